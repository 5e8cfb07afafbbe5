//! Who may do what on an inbound connection: the rules the session driver and the
//! listeners apply, as plain functions of what is known about the client, so each rule is
//! read in one place and tested without a socket.

use std::time::Duration;

use posthorn_proto::reply::table;
use posthorn_proto::{Mailbox, Reply, ReversePath};

use crate::accounts::directory::Directory;
use crate::config::SendingLimits;
use crate::inbound::limits::client_key::ClientKey;
use crate::inbound::limits::throttle::ConnectionRate;
use crate::inbound::session::Client;

/// The longest a tarpitted reply is held back.
const MAX_TARPIT: Duration = Duration::from_secs(30);

/// What the rules know about the party at the other end of a session.
#[derive(Debug, Clone, Copy)]
pub struct Party<'a> {
    /// The network client or local program.
    pub client: &'a Client,
    /// The account it logged in as (SMTP AUTH).
    pub user: Option<&'a str>,
    /// It came in on a submission listener (587, 465).
    pub submission_listener: bool,
    /// Its address is in `policy.trusted_networks`.
    pub trusted: bool,
}

impl Party<'_> {
    /// A user of ours: logged in, or a local program (whose Unix user is known).
    pub fn is_user(&self) -> bool {
        self.user.is_some() || matches!(self.client, Client::Local(_))
    }

    /// Root or the any-sender group through `sendmail`: may use any sender.
    fn any_sender(&self) -> bool {
        matches!(self.client, Client::Local(user) if user.any_sender)
    }

    /// A submission (RFC 6409): a submission listener, the local socket, or a logged-in
    /// user; such mail is completed (Date, Message-ID) and never checked as foreign.
    pub fn is_submission(&self) -> bool {
        self.submission_listener || self.is_user()
    }

    /// Relaying, mail to any domain, is for users and trusted networks only: anything
    /// else would make us an open relay.
    pub fn may_relay(&self) -> bool {
        self.is_user() || self.trusted
    }

    /// Mail from another server, whose SPF, DKIM, DMARC and ARC are checked: not a
    /// submission, not a trusted network, nor an address the checks skip (`checks_apply`).
    pub fn is_checked(&self, checks_apply: bool) -> bool {
        matches!(self.client, Client::Network(_))
            && !self.is_submission()
            && !self.trusted
            && checks_apply
    }

    /// Whether the checking stage looks at its mail, on a listener where checks run:
    /// mail from another server always, and mail from our users and trusted networks
    /// when the admin asks (`checks.submissions`).
    pub fn is_filtered(&self, listener_checks: bool, submissions_too: bool) -> bool {
        listener_checks
            && (submissions_too
                || (matches!(self.client, Client::Network(_))
                    && !self.is_submission()
                    && !self.trusted))
    }

    /// Whether we sign its mail (with signing on): a submission or a trusted client, never
    /// mail from another server.
    pub fn is_signed(&self, signing_on: bool) -> bool {
        signing_on && (self.is_submission() || self.trusted)
    }

    /// Whether its mail that an alias or a Sieve `redirect` forwards to another server is
    /// ARC-sealed (with sealing on): mail from other servers, whose checks the next hop
    /// cannot repeat.
    pub fn seals_forwards(&self, sealing_on: bool) -> bool {
        sealing_on && !self.is_submission()
    }

    /// Whether a user may put `sender` on a message as its envelope sender (RFC 6409
    /// §6.1). Anyone else is not held to it. The null sender is refused to users: it would
    /// hide their mail from its own bounces.
    pub fn owns_sender(&self, directory: &Directory, sender: &ReversePath) -> bool {
        match sender {
            ReversePath::Mailbox(mailbox) => self.owns_address(directory, mailbox),
            ReversePath::Null => !self.is_user() || self.any_sender(),
        }
    }

    /// Whether a user may use `address` as its own: one of its account's addresses or
    /// `send_as`, or for a local program its `user@hostname` and `local_send_as`. An
    /// account removed since its login owns nothing.
    pub fn owns_address(&self, directory: &Directory, address: &Mailbox) -> bool {
        match (self.client, self.user) {
            (Client::Local(user), _) => {
                user.any_sender || directory.local_may_send_as(&user.name, address)
            }
            (_, Some(user)) => directory
                .account(user)
                .is_some_and(|account| directory.may_send_as(account, address)),
            (_, None) => true,
        }
    }

    /// The first author (From, Sender) a user may not use, when its message is held to
    /// its authors: our signature must not go on someone else's name. Root and the
    /// any-sender group are not held to it, nor is anyone who is not a user. An author
    /// that is not an address is foreign.
    pub fn foreign_author(
        &self,
        directory: &Directory,
        authors: impl IntoIterator<Item = String>,
    ) -> Option<String> {
        if !self.is_user() || self.any_sender() {
            return None;
        }
        authors.into_iter().find(|author| {
            posthorn_proto::address::parse_mailbox(author)
                .map_or(true, |mailbox| !self.owns_address(directory, &mailbox))
        })
    }

    /// Whose sending is counted against a quota, under which name and limits: a logged-in
    /// account with its own limits, or a local user (as `local:USER`, which no account
    /// name can be) with `[sending]`'s. Root and the any-sender group are not counted.
    pub fn counted(
        &self,
        directory: &Directory,
        local_limits: SendingLimits,
    ) -> Option<(String, SendingLimits)> {
        match (self.client, self.user) {
            (Client::Local(user), _) if !user.any_sender => {
                Some((format!("local:{}", user.name), local_limits))
            }
            (Client::Local(_), _) | (_, None) => None,
            (_, Some(user)) => directory
                .account(user)
                .map(|account| (user.to_string(), account.sending)),
        }
    }
}

/// How long to hold back the next reply to a network client that has made `errors`
/// errors: nothing up to `after`, then `delay` more for each one, at most
/// [`MAX_TARPIT`]. Guessing and probing become slow; local programs are not slowed.
pub fn tarpit(client: &Client, errors: u32, after: u32, delay: Duration) -> Option<Duration> {
    (errors > after && matches!(client, Client::Network(_)))
        .then(|| delay.saturating_mul(errors - after).min(MAX_TARPIT))
}

/// Why a new connection is turned away before its session starts, with the reply.
/// `blocked` is asked only where clients log in.
pub fn refusal(
    key: ClientKey,
    trusted: bool,
    rate: &ConnectionRate,
    takes_logins: bool,
    blocked: impl FnOnce() -> bool,
) -> Option<(&'static str, Reply)> {
    // Trusted networks are not counted: a busy application server is not a flood.
    if !trusted && !rate.admit(key) {
        Some(("connection rate", table::connection_rate_exceeded()))
    } else if takes_logins && blocked() {
        // Where clients log in, an address blocked for failed logins is not even heard.
        Some((
            "blocked after failed logins",
            table::blocked_for_auth_failures(),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};

    use super::*;
    use crate::config::parse;
    use crate::inbound::session::LocalUser;

    const CONFIG: &str = r#"
[server]
hostname = "mx.example.com"

[[domain]]
name = "example.com"

[[account]]
name = "alice"
send_as = ["alice@example.com", "@alias.example"]
sending = { messages_per_hour = 5 }

[[account]]
name = "bob"

[policy]
local_send_as = { www = ["noreply@example.com"] }
"#;

    fn directory() -> Directory {
        Directory::build_with_users(&parse(CONFIG, None).unwrap(), &[]).unwrap()
    }

    fn network() -> Client {
        Client::Network(SocketAddr::from(([192, 0, 2, 1], 2525)))
    }

    fn local(name: &str, any_sender: bool) -> Client {
        Client::Local(LocalUser {
            uid: 1000,
            name: name.into(),
            any_sender,
        })
    }

    fn party<'a>(
        client: &'a Client,
        user: Option<&'a str>,
        submission: bool,
        trusted: bool,
    ) -> Party<'a> {
        Party {
            client,
            user,
            submission_listener: submission,
            trusted,
        }
    }

    fn mailbox(text: &str) -> Mailbox {
        posthorn_proto::address::parse_mailbox(text).unwrap()
    }

    #[test]
    fn who_relays_is_checked_and_is_signed() {
        let (net, www) = (network(), local("www", false));
        // (party, relays, checked, signed, seals forwards)
        let cases = [
            (party(&net, None, false, false), false, true, false, true),
            (party(&net, None, false, true), true, false, true, true),
            (party(&net, None, true, false), false, false, true, false),
            (
                party(&net, Some("alice"), false, false),
                true,
                false,
                true,
                false,
            ),
            (
                party(&net, Some("alice"), true, false),
                true,
                false,
                true,
                false,
            ),
            (party(&www, None, true, false), true, false, true, false),
        ];
        for (i, (party, relays, checked, signed, seals)) in cases.into_iter().enumerate() {
            assert_eq!(party.may_relay(), relays, "case {i}: relay");
            assert_eq!(party.is_checked(true), checked, "case {i}: checked");
            assert!(!party.is_checked(false), "case {i}: checks skipped");
            assert_eq!(party.is_signed(true), signed, "case {i}: signed");
            assert!(!party.is_signed(false), "case {i}: signing off");
            assert_eq!(party.seals_forwards(true), seals, "case {i}: sealed");
        }
    }

    #[test]
    fn a_user_sends_only_as_itself() {
        let directory = directory();
        let (net, www, root) = (network(), local("www", false), local("root", true));
        let alice = party(&net, Some("alice"), true, false);
        let gone = party(&net, Some("carol"), true, false);
        let stranger = party(&net, None, false, false);
        let www = party(&www, None, true, false);
        let root = party(&root, None, true, false);
        let null = ReversePath::Null;
        let of = |text: &str| ReversePath::Mailbox(mailbox(text));
        let cases = [
            (alice, of("alice@example.com"), true),
            (alice, of("alice@Example.COM"), true),
            (alice, of("anyone@alias.example"), true),
            (alice, of("bob@example.com"), false),
            (alice, null.clone(), false),
            (gone, of("carol@example.com"), false),
            (stranger, of("bob@example.com"), true),
            (stranger, null.clone(), true),
            (www, of("www@mx.example.com"), true),
            (www, of("noreply@example.com"), true),
            (www, of("alice@example.com"), false),
            (www, null.clone(), false),
            (root, of("alice@example.com"), true),
            (root, null, true),
        ];
        for (i, (party, sender, owned)) in cases.into_iter().enumerate() {
            assert_eq!(
                party.owns_sender(&directory, &sender),
                owned,
                "case {i}: {sender}"
            );
        }
    }

    #[test]
    fn authors_are_held_to_the_same_rule() {
        let directory = directory();
        let (net, root) = (network(), local("root", true));
        let alice = party(&net, Some("alice"), true, false);
        let authors = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            alice.foreign_author(
                &directory,
                authors(&["alice@example.com", "x@alias.example"])
            ),
            None
        );
        assert_eq!(
            alice.foreign_author(
                &directory,
                authors(&["alice@example.com", "bob@example.com"])
            ),
            Some("bob@example.com".into())
        );
        assert_eq!(
            alice.foreign_author(&directory, authors(&["not an address"])),
            Some("not an address".into())
        );
        let stranger = party(&net, None, false, false);
        assert_eq!(
            stranger.foreign_author(&directory, authors(&["bob@example.com"])),
            None
        );
        let root = party(&root, None, true, false);
        assert_eq!(
            root.foreign_author(&directory, authors(&["bob@example.com"])),
            None
        );
    }

    #[test]
    fn users_are_counted_under_their_own_names() {
        let directory = directory();
        let local_limits = SendingLimits::default();
        let (net, www, root) = (network(), local("www", false), local("root", true));
        let counted = |party: Party<'_>| party.counted(&directory, local_limits).map(|(k, _)| k);
        assert_eq!(
            counted(party(&net, Some("alice"), true, false)),
            Some("alice".into())
        );
        assert_eq!(counted(party(&net, Some("carol"), true, false)), None);
        assert_eq!(counted(party(&net, None, false, false)), None);
        assert_eq!(
            counted(party(&www, None, true, false)),
            Some("local:www".into())
        );
        assert_eq!(counted(party(&root, None, true, false)), None);
        let alice = party(&net, Some("alice"), true, false);
        let (_, limits) = alice.counted(&directory, local_limits).unwrap();
        assert_eq!(limits.messages_per_hour, 5);
    }

    #[test]
    fn the_tarpit_grows_with_errors_up_to_its_cap() {
        let delay = Duration::from_secs(1);
        let (net, www) = (network(), local("www", false));
        assert_eq!(tarpit(&net, 3, 3, delay), None);
        assert_eq!(tarpit(&net, 5, 3, delay), Some(Duration::from_secs(2)));
        assert_eq!(tarpit(&net, 500, 3, delay), Some(MAX_TARPIT));
        assert_eq!(tarpit(&www, 50, 3, delay), None);
    }

    #[test]
    fn connections_are_refused_over_the_rate_or_when_blocked() {
        let rate = ConnectionRate::new(1);
        let key = ClientKey::of(IpAddr::from([192, 0, 2, 7]), 64);
        assert!(refusal(key, false, &rate, true, || false).is_none());
        let (why, reply) = refusal(key, false, &rate, true, || false).unwrap();
        assert_eq!((why, reply.code), ("connection rate", 421));
        assert!(
            refusal(key, true, &rate, false, || false).is_none(),
            "trusted"
        );
        let other = ClientKey::of(IpAddr::from([192, 0, 2, 8]), 64);
        assert!(
            refusal(other, false, &rate, false, || true).is_none(),
            "no logins here"
        );
        let (why, _) = refusal(other, true, &rate, true, || true).unwrap();
        assert_eq!(why, "blocked after failed logins");
    }
}
