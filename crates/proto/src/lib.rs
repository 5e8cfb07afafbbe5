//! The SMTP protocol of Posthorn, without I/O: addresses, commands, replies, message
//! content decoding, the server session state machine and the client state machine. Nothing here touches a socket,
//! a clock or a file, so every rule can be tested by feeding bytes and reading replies.

pub mod address;
pub mod client;
pub mod command;
pub mod data;
pub mod dsn;
pub mod headers;
pub mod reply;
pub mod sasl;
pub mod session;

pub use address::{ForwardPath, Mailbox, ReversePath};
pub use command::{BodyType, Command, MailFrom, RcptTo};
pub use data::{BareNewline, ContentLimits};
pub use dsn::{Notify, Orcpt, Ret};
pub use reply::{Reply, Status};
pub use sasl::Credentials;
pub use session::{Action, AuthPolicy, Hello, Session, SessionConfig, Transaction};
