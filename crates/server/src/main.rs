//! The `posthorn` command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};
use posthorn::accounts::passwords;
use posthorn::accounts::users::{self, NewUser, UsersFile};
use posthorn::admin::{self, Request};
use posthorn::config::{Config, Size};
use posthorn::inbound::sendmail;
use posthorn::log_writer;
use posthorn::mailauth::keys::{self, Algorithm};
use posthorn::mailauth::records;
use posthorn::mailauth::sign::{self, Keyring};
use tracing_subscriber::EnvFilter;

/// sysexits.h EX_USAGE: the command was used wrongly.
const EX_USAGE: u8 = 64;
/// sysexits.h EX_CONFIG: the configuration is wrong.
const EX_CONFIG: u8 = 78;
/// sysexits.h EX_SOFTWARE: the server failed.
const EX_SOFTWARE: u8 = 70;
/// sysexits.h EX_UNAVAILABLE: no server to talk to.
const EX_UNAVAILABLE: u8 = 69;

/// `--config` and `--json` are global: `posthorn user -c F passwd alice` and
/// `posthorn user passwd alice -c F` mean the same.
#[derive(Parser)]
#[command(name = "posthorn", version, about = "Posthorn mail server")]
struct Cli {
    /// The configuration file (TOML); without it, the embedded defaults.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Print the answer as JSON (`queue` and `user list`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (with no --config, on the embedded defaults: loopback port 2525,
    /// data under ./posthorn-data, local domain `localhost`, user `postmaster`).
    Serve,
    /// Check a configuration file (FILE or --config) and exit: 0 when it is valid.
    CheckConfig {
        /// The configuration file (TOML).
        file: Option<PathBuf>,
    },
    /// Run the checks (`[checks]`) on a message file and explain every symbol: why such
    /// a message would be accepted, junked, deferred or refused.
    Check {
        /// The message as a file; standard input when absent or `-`.
        file: Option<PathBuf>,
        /// The envelope sender (MAIL FROM).
        #[arg(long)]
        from: Option<String>,
        /// The client's address; with it, SPF, DKIM, DMARC and ARC are checked too.
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        /// The client's HELO name.
        #[arg(long)]
        helo: Option<String>,
        /// List every symbol with its score and meaning instead.
        #[arg(long)]
        symbols: bool,
    },
    /// Inspect and change the queue of the running server.
    Queue {
        #[command(subcommand)]
        action: Request,
    },
    /// Manage the users who log in (the users file); a running server picks changes up.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// DKIM keys of our domains.
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
    },
    /// Print every DNS record to publish for DOMAIN (MX, A/AAAA, SPF, DKIM, DMARC,
    /// MTA-STS, TLS-RPT) as zone file lines.
    DnsRecords {
        /// The mail domain.
        domain: String,
    },
    /// The learning spam classifier: train it from files or Maildir folders, see how far
    /// a model is, make it forget, measure it on a labelled corpus.
    Spam {
        #[command(subcommand)]
        action: SpamAction,
    },
    /// Send a message read from standard input, like sendmail(8): `-t`, `-i`, `-f`, `-F`,
    /// `-C FILE` and recipients (`posthorn sendmail --help`). A link named `sendmail` to
    /// this program does the same.
    #[command(disable_help_flag = true)]
    Sendmail {
        /// sendmail's own options and the recipients.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

impl Command {
    /// True for the commands that can answer in JSON.
    fn speaks_json(&self) -> bool {
        matches!(
            self,
            Command::Queue { .. }
                | Command::User {
                    action: UserAction::List
                }
                | Command::Spam {
                    action: SpamAction::Status { .. }
                }
        )
    }
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user; the password is read from standard input.
    Add {
        /// Login and mailbox name.
        name: String,
        /// An address of the user (repeatable); `NAME@` every local domain by default.
        #[arg(long = "address")]
        addresses: Vec<String>,
        /// A sender address it may use (repeatable): an address, `@domain` or `*`; its
        /// own addresses by default.
        #[arg(long)]
        send_as: Vec<String>,
        /// Mailbox size limit, e.g. `2GiB`.
        #[arg(long)]
        quota: Option<String>,
    },
    /// Set a user's password, read from standard input.
    Passwd {
        /// The user.
        name: String,
    },
    /// Remove a user (its mailbox stays on disk).
    Del {
        /// The user.
        name: String,
    },
    /// List the users.
    List,
}

#[derive(Subcommand)]
enum SpamAction {
    /// Learn messages (files, folders of files, or Maildir folders) as spam or ham: an
    /// account's model and the global one, or the global one only. A running server picks
    /// the training up within seconds.
    Train {
        /// Spam: a message file or a folder of them (repeatable).
        #[arg(long)]
        spam: Vec<PathBuf>,
        /// Ham: a message file or a folder of them (repeatable).
        #[arg(long)]
        ham: Vec<PathBuf>,
        /// The account whose model learns (the global one learns too).
        #[arg(long)]
        account: Option<String>,
    },
    /// How many messages a model has learnt, and whether it is ready to score.
    Status {
        /// The account; the global model without it.
        #[arg(long)]
        account: Option<String>,
    },
    /// Take messages back out of a model, or with --all forget everything it learnt.
    Forget {
        /// The account; the global model without it.
        #[arg(long)]
        account: Option<String>,
        /// Forget everything (the model's files are removed).
        #[arg(long, conflicts_with = "messages")]
        all: bool,
        /// Message files or folders to take back out.
        messages: Vec<PathBuf>,
    },
    /// Train a fresh model on TRAIN (spam/ and ham/ folders) and measure it on TEST:
    /// spam recall at 0.1%, 0.5% and 1% false positives, AUC, and speed.
    Eval {
        /// The training corpus.
        #[arg(long)]
        train: PathBuf,
        /// The test corpus.
        #[arg(long)]
        test: PathBuf,
    },
}

#[derive(Subcommand)]
enum DkimAction {
    /// Make a key for DOMAIN in the data folder and print its TXT record; without
    /// --algorithm, an Ed25519 and an RSA key (the server signs with both). The server
    /// uses the newest key of each algorithm from its next start.
    Generate {
        /// The signing domain.
        domain: String,
        /// The selector; by default the month and the algorithm, e.g. 202611r.
        #[arg(long, requires = "algorithm")]
        selector: Option<String>,
        /// One key of this algorithm only.
        #[arg(long, value_enum)]
        algorithm: Option<Algorithm>,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let invoked_as = args
        .first()
        .and_then(|program| std::path::Path::new(program).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    // sendmail takes sendmail's flags (`-C FILE`, `-t`, `-bm`...), which are not ours:
    // everything after its name is its own.
    let sendmail_from = match (invoked_as, args.get(1).map(String::as_str)) {
        ("sendmail", _) => Some(1),
        (_, Some("sendmail")) => Some(2),
        _ => None,
    };
    if let Some(first) = sendmail_from {
        return ExitCode::from(sendmail::main(None, &args[first..]));
    }
    let cli = Cli::parse();
    if cli.json && !cli.command.speaks_json() {
        eprintln!("posthorn: --json is for `queue`, `user list` and `spam status` only");
        return ExitCode::from(EX_USAGE);
    }
    let config = cli.config;
    match cli.command {
        // `posthorn --config F sendmail ...`: F unless sendmail's own -C names another.
        Command::Sendmail { args } => ExitCode::from(sendmail::main(config, &args)),
        Command::User { action } => user(config, cli.json, action),
        Command::Dkim {
            action:
                DkimAction::Generate {
                    domain,
                    selector,
                    algorithm,
                },
        } => dkim_generate(config, &domain, selector, algorithm),
        Command::DnsRecords { domain } => dns_records(config, &domain),
        Command::CheckConfig { file } => check_config(file, config),
        Command::Check {
            file,
            from,
            ip,
            helo,
            symbols,
        } => check_message(config, file, from, ip, helo, symbols),
        Command::Queue { action } => queue(config, cli.json, action),
        Command::Spam { action } => spam(config, cli.json, action),
        Command::Serve => {
            let config = match load_config(config) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let _flush_at_exit = init_logging();
            serve(config)
        }
    }
}

/// `posthorn check-config FILE` (or `--config FILE`).
fn check_config(file: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let file = match (file, config) {
        (Some(file), None) | (None, Some(file)) => file,
        (Some(_), Some(_)) => {
            eprintln!("posthorn check-config: give the file once, as FILE or --config FILE");
            return ExitCode::from(EX_USAGE);
        }
        (None, None) => {
            eprintln!("posthorn check-config: which file? posthorn check-config FILE");
            return ExitCode::from(EX_USAGE);
        }
    };
    match posthorn::settings::load(&file) {
        Ok(_) => {
            println!("{}: OK", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EX_CONFIG)
        }
    }
}

/// `posthorn check [FILE] [--from ADDR --ip IP --helo NAME]`, or `--symbols`.
fn check_message(
    config: Option<PathBuf>,
    file: Option<PathBuf>,
    from: Option<String>,
    ip: Option<std::net::IpAddr>,
    helo: Option<String>,
    symbols: bool,
) -> ExitCode {
    use posthorn::inbound::checks::explain;
    use std::io::Read as _;
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if symbols {
        print!("{}", explain::symbol_table(&config));
        return ExitCode::SUCCESS;
    }
    let sender = match from.as_deref().filter(|f| !f.is_empty()) {
        Some(text) => match posthorn_proto::address::parse_mailbox(text) {
            Ok(sender) => Some(sender),
            Err(e) => {
                eprintln!("posthorn check: --from {text:?}: {e}");
                return ExitCode::from(EX_USAGE);
            }
        },
        None => None,
    };
    let message = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map(|_| bytes)
                .map_err(|e| format!("standard input: {e}"))
        }
    };
    let message = match message {
        Ok(message) => message,
        Err(e) => {
            eprintln!("posthorn check: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let origin = explain::Origin { sender, ip, helo };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("posthorn check: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    match runtime.block_on(explain::explain(&config, message, &origin)) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("posthorn check: {e}");
            ExitCode::from(EX_CONFIG)
        }
    }
}

/// The configuration at `path`, or the embedded one.
fn load_config(path: Option<PathBuf>) -> Result<Config, ExitCode> {
    match path {
        Some(path) => posthorn::settings::load(&path).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(EX_CONFIG)
        }),
        None => Ok(Config::embedded()),
    }
}

/// A password from standard input: prompted for (twice) on a terminal, else one line.
fn read_password() -> Result<String, String> {
    use std::io::{BufRead as _, IsTerminal as _};
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let ask = |prompt: &str| -> Result<String, String> {
        if terminal {
            eprint!("{prompt}");
        }
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    let password = ask("Password: ")?;
    if terminal && ask("Again: ")? != password {
        return Err("the passwords differ".into());
    }
    if password.is_empty() {
        return Err("empty password".into());
    }
    Ok(password)
}

/// `posthorn user ...`: edits the users file.
fn user(config: Option<PathBuf>, json: bool, action: UserAction) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let path = config.users_file();
    // The slow part, hashing a password, is done before the users file is locked.
    let (change, done) = match user_change(action) {
        Ok(Some(change)) => change,
        Ok(None) => return list_users(&config, json),
        Err(e) => {
            eprintln!("posthorn user: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _lock = match UsersFile::lock(&path) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("posthorn user: cannot lock {}: {e}", path.display());
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    let mut file = match UsersFile::load(&path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Err(e) = change(&mut file, &config) {
        eprintln!("posthorn user: {e}");
        return ExitCode::FAILURE;
    }
    match file.save(&path) {
        Ok(()) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("posthorn user: cannot write {}: {e}", path.display());
            ExitCode::from(EX_SOFTWARE)
        }
    }
}

/// An edit of the users file, ready to apply to the file as it is under the lock.
type UserChange = Box<dyn FnOnce(&mut UsersFile, &Config) -> Result<(), String>>;

/// The edit `action` makes (none for `list`), with its password read and hashed, and
/// what to say once it is saved: a silent success leaves people wondering.
fn user_change(action: UserAction) -> Result<Option<(UserChange, String)>, String> {
    let hashed = || read_password().and_then(|p| passwords::hash(&p).map_err(|e| e.to_string()));
    Ok(Some(match action {
        UserAction::List => return Ok(None),
        UserAction::Add {
            name,
            addresses,
            send_as,
            quota,
        } => {
            let quota = quota
                .map(|q| toml::Value::String(q).try_into::<Size>())
                .transpose()
                .map_err(|e| format!("--quota: {e}"))?;
            let done = format!("added {name}");
            let user = NewUser {
                name,
                addresses,
                send_as,
                quota,
                password_hash: hashed()?,
            };
            (Box::new(move |file, config| file.add(config, user)), done)
        }
        UserAction::Passwd { name } => {
            let hash = hashed()?;
            let done = format!("password changed for {name}");
            (
                Box::new(move |file, config| file.set_password(config, &name, hash)),
                done,
            )
        }
        UserAction::Del { name } => {
            let done = format!("removed {name} (its mailbox stays on disk)");
            (
                Box::new(move |file, config| file.remove(config, &name)),
                done,
            )
        }
    }))
}

/// `posthorn user list`: every account, from the configuration and the users file.
fn list_users(config: &Config, json: bool) -> ExitCode {
    let listed = match users::list(config, &config.users_file()) {
        Ok(listed) => listed,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&listed).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let none = || "(none)".to_string();
    for user in &listed {
        let list = |l: &[String]| if l.is_empty() { none() } else { l.join(", ") };
        println!(
            "{}\t{}\taddresses: {}\tsend as: {}\tquota: {}\tpassword: {}",
            user.name,
            user.source,
            list(&user.addresses),
            list(&user.send_as),
            user.quota.map_or_else(none, |q| Size(q).to_string()),
            if user.password { "set" } else { "none" }
        );
    }
    ExitCode::SUCCESS
}

/// `posthorn spam ...`.
fn spam(config: Option<PathBuf>, json: bool, action: SpamAction) -> ExitCode {
    use posthorn::learning::{Learning, commands};
    use posthorn_classify::Class;
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let SpamAction::Eval { train, test } = &action {
        let corpora = commands::corpus(train).and_then(|t| Ok((t, commands::corpus(test)?)));
        return match corpora {
            Ok((train, test)) => {
                print!("{}", posthorn_classify::eval::evaluate(&train, &test));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("posthorn spam eval: {e}");
                ExitCode::from(EX_USAGE)
            }
        };
    }
    let account = match &action {
        SpamAction::Train { account, .. }
        | SpamAction::Status { account }
        | SpamAction::Forget { account, .. } => account.clone(),
        SpamAction::Eval { .. } => None,
    };
    if let Some(name) = &account {
        match users::list(&config, &config.users_file()) {
            Ok(listed) if listed.iter().any(|u| &u.name == name) => {}
            Ok(_) => {
                eprintln!("posthorn spam: --account {name:?}: no such account");
                return ExitCode::from(EX_USAGE);
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(EX_CONFIG);
            }
        }
    }
    let learning = match Learning::open(&config) {
        Ok(learning) => learning,
        Err(e) => {
            eprintln!("posthorn spam: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    let account = account.as_deref();
    let done = match action {
        SpamAction::Train { spam, ham, .. } => {
            if spam.is_empty() && ham.is_empty() {
                eprintln!("posthorn spam train: give --spam or --ham");
                return ExitCode::from(EX_USAGE);
            }
            commands::train(&learning, account, &spam, Class::Spam).and_then(|spam| {
                let ham = commands::train(&learning, account, &ham, Class::Ham)?;
                Ok(format!(
                    "spam: {} learnt, {} relearnt, {} known, {} unreadable\n\
                     ham: {} learnt, {} relearnt, {} known, {} unreadable",
                    spam.learnt,
                    spam.relearnt,
                    spam.known,
                    spam.unreadable,
                    ham.learnt,
                    ham.relearnt,
                    ham.known,
                    ham.unreadable,
                ))
            })
        }
        SpamAction::Forget { all: true, .. } => learning
            .reset(account)
            .map(|()| "forgot everything it learnt".to_string()),
        SpamAction::Forget { messages, .. } => commands::forget(&learning, account, &messages)
            .map(|n| format!("{n} messages forgotten")),
        SpamAction::Status { .. } | SpamAction::Eval { .. } => Ok(String::new()),
    };
    let done = done.and_then(|done| Ok((done, learning.status(account)?)));
    match done {
        Ok((_, status)) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok((done, status)) => {
            if !done.is_empty() {
                println!("{done}");
            }
            let whose = account.map_or("global model".to_string(), |a| format!("account {a}"));
            println!("{whose}: {status}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("posthorn spam: {e}");
            ExitCode::from(EX_SOFTWARE)
        }
    }
}

/// `posthorn dkim generate`: new key files, and the records publishing them.
fn dkim_generate(
    config: Option<PathBuf>,
    domain: &str,
    selector: Option<String>,
    algorithm: Option<Algorithm>,
) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !posthorn_proto::address::is_valid_domain(&domain) {
        eprintln!("posthorn dkim: {domain:?} is not a domain name");
        return ExitCode::from(EX_USAGE);
    }
    let folder = keys::domain_folder(&config.server.data_dir, &domain);
    let algorithms = algorithm.map_or(vec![Algorithm::Ed25519, Algorithm::Rsa], |a| vec![a]);
    for algorithm in algorithms {
        let selector = selector
            .clone()
            .unwrap_or_else(|| algorithm.default_selector(SystemTime::now()));
        let made = keys::create(&folder, &selector, algorithm)
            .and_then(|path| keys::load(&path).map(|key| (path, key)));
        match made {
            Ok((path, key)) => {
                eprintln!("wrote {}", path.display());
                println!(
                    "{selector}._domainkey.{domain}. 3600 IN TXT {}",
                    records::txt_value(&key.txt_record())
                );
            }
            Err(e) => {
                eprintln!("posthorn dkim: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if config
        .dkim
        .keys
        .iter()
        .any(|k| k.domain.get_ref().eq_ignore_ascii_case(&domain))
    {
        eprintln!(
            "note: [[dkim.key]] entries for {domain} in the configuration take precedence over these files"
        );
    }
    ExitCode::SUCCESS
}

/// `posthorn dns-records DOMAIN`: the zone lines to publish. Keys the server would make at
/// start are made now, so the records printed are the ones it will sign with.
fn dns_records(config: Option<PathBuf>, domain: &str) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if config.is_local_domain(&domain)
        && config.dkim.sign
        && let Err(e) = Keyring::load(&config, std::slice::from_ref(&domain))
    {
        eprintln!("posthorn dns-records: DKIM keys: {e}");
        return ExitCode::from(EX_CONFIG);
    }
    let published = match sign::published_keys(&config, &domain) {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("posthorn dns-records: DKIM keys: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let policy_id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    print!(
        "{}",
        records::zone_lines(&config, &domain, &published, policy_id)
    );
    ExitCode::SUCCESS
}

/// `posthorn queue ...`: one request to the running server's admin socket.
fn queue(config: Option<PathBuf>, json: bool, request: Request) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let detailed = matches!(request, Request::Show { .. });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    let answer = runtime.block_on(admin::request(&config.server.data_dir, &request));
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&response).unwrap_or_default()
        );
    } else if matches!(request, Request::List | Request::Show { .. }) && response.ok {
        print!("{}", admin::format_listing(&response.messages, detailed));
    } else if response.ok {
        println!("{}", response.text);
    } else {
        eprintln!("{}", response.text);
    }
    if response.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// rustls's parser of handshake messages warns of harmless peer quirks: "Illegal SNI
/// extension" for every client that sends the address it connected to as its server name
/// (RFC 6066 allows host names only; many clients do it when given an address), the
/// handshake going on unharmed. Off unless `RUST_LOG` names rustls.
const QUIET_RUSTLS: &str = "rustls::msgs::handshake=error";

/// Logs go to stderr through a writer thread (`log_writer`): a busy server's sessions
/// never wait on a write(2) per log line. The returned guard writes what is left when
/// dropped at exit; without the thread, lines go straight to stderr.
fn init_logging() -> Option<log_writer::FlushAtExit> {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let names_rustls = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("rustls"));
    if !names_rustls && let Ok(quiet) = QUIET_RUSTLS.parse() {
        filter = filter.add_directive(quiet);
    }
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match log_writer::start(std::io::stderr()) {
        Ok((writer, flush_at_exit)) => {
            log.with_writer(writer).init();
            Some(flush_at_exit)
        }
        Err(e) => {
            log.with_writer(std::io::stderr).init();
            tracing::warn!(error = %e, "cannot start the log's writer thread; writing each line");
            None
        }
    }
}

fn serve(config: Config) -> ExitCode {
    posthorn::allocator::return_large_blocks();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking threads (file work of IMAP sessions, deliveries, password checks) leave
        // 2 s after their last task rather than tokio's 10: each keeps its stack and its
        // malloc arena's pages, about 0.3 MiB, and 50 busy IMAP clients leave over a
        // hundred behind.
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    let result = runtime.block_on(async {
        // Registered before start-up work begins, so SIGTERM is always graceful.
        let stop = stop_signal()?;
        posthorn::server::run(config, stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(EX_SOFTWARE)
        }
    }
}

/// Watches SIGTERM and SIGINT from now on; the future completes on either.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
