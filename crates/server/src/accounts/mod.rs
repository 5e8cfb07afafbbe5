//! Who is who: the directory of domains, accounts and aliases recipients are resolved
//! against, the users file `posthorn user` edits, and password checks for every protocol.

pub(crate) mod check_cache;
pub(crate) mod check_gate;
pub(crate) mod check_memory;
pub(crate) mod directory;
pub(crate) mod login;
pub mod passwords;
pub(crate) mod srs;
pub mod users;
