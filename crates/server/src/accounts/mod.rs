//! Who is who: the directory of domains, accounts and aliases recipients are resolved
//! against, the users file `posthorn user` edits, and password checks for every protocol.

pub mod check_gate;
pub mod directory;
pub mod login;
pub mod passwords;
pub mod users;
