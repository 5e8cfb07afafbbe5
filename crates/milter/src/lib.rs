//! Posthorn's milter client: the MTA's side of Sendmail's mail filter protocol
//! (version 6), so external filters (rspamd, OpenDKIM, clamav-milter, a site's own) can
//! see and change mail before it is accepted, the way Postfix plugs them in.
//!
//! [`codec`] is the wire format without I/O. [`MilterClient`] talks to one filter over
//! any async stream ([`MilterClient::open`] connects to a [`MilterAddress`]), one SMTP
//! session at a time: each stage returns the filter's [`Decision`], the end of a message
//! its [`Outcome`], whose header edits apply to a list of [`HeaderField`]s.
//!
//! ```ignore
//! let mut milter = MilterClient::open(&"inet:127.0.0.1:11332".parse()?, Options::default()).await?;
//! milter.connect("mail.example", Some(peer), &Macros::new().with("j", "mx.example")).await?;
//! milter.helo("mail.example", &Macros::new()).await?;
//! milter.mail("a@example.org", &["BODY=8BITMIME"], &Macros::new().with("i", queue_id)).await?;
//! milter.rcpt("b@example.net", &[], &Macros::new()).await?;
//! milter.data(&Macros::new()).await?;
//! for field in &fields { milter.header(&field.name, &field.value).await?; }
//! milter.end_of_headers(&Macros::new()).await?;
//! milter.body(body).await?;
//! let outcome = milter.end_of_message(&Macros::new()).await?;
//! outcome.apply_header_edits(&mut fields);
//! ```

mod address;
mod changes;
mod channel;
mod client;
pub mod codec;
mod error;
mod headers;
mod macros;
mod negotiate;
mod options;
mod outcome;
mod stage;

pub use address::{MilterAddress, MilterStream};
pub use client::MilterClient;
pub use error::MilterError;
pub use headers::{HeaderEdit, HeaderField, apply_edits};
pub use macros::Macros;
pub use negotiate::Negotiated;
pub use options::{Limits, Options, Timeouts};
pub use outcome::{Decision, Modification, Outcome};
