# message: subaddr.eml
require "fileinto";
if allof (exists ["From", "Cc"], not exists "X-Missing", anyof (false, header :is "x-priority" "2")) {
  fileinto "Matched";
}
