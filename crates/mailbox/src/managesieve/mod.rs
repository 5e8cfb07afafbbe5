//! ManageSieve (RFC 5804): how mail clients (Thunderbird's and Roundcube's Sieve editors,
//! `sieve-connect`) list, upload, check and activate an account's Sieve scripts. Scripts
//! are compiled on upload, and a broken one is refused with the compiler's own words;
//! they are kept beside the account's Maildir (`scripts`). STARTTLS (§2.2) and SASL PLAIN
//! (§2.1) as on our other listeners: no password in the clear unless the listener allows
//! it.

mod command;
pub mod scripts;

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWriteExt};
use tracing::info;

use crate::access::{Accounts, Connection, Credentials, Login, Settings, User};
use crate::lines::{Line, LineReader};
use command::{Argument, Tail, string};
use scripts::{MAX_SCRIPT, ScriptError, Scripts};

/// Longest command line (a literal's octets do not count), and the largest literal kept
/// before login: anyone can connect, and AUTHENTICATE needs a few hundred octets.
const MAX_LINE: usize = 8192;

/// Arguments one command takes at most (RENAMESCRIPT and PUTSCRIPT take two).
const MAX_ARGUMENTS: usize = 4;

/// The Sieve compiler, as the server gives it: what scripts may require, and a check.
pub trait SieveCheck: Send + Sync {
    /// The extensions scripts may `require`, space-separated (the SIEVE capability).
    fn extensions(&self) -> String;
    /// Compiles `script`; the error tells the user where and what.
    fn check(&self, script: &str) -> Result<(), String>;
}

/// Serves one ManageSieve client until it logs out or goes silent too long.
pub async fn serve<C: Connection>(
    mut conn: C,
    client: IpAddr,
    settings: Arc<Settings>,
    accounts: Arc<dyn Accounts>,
    sieve: Arc<dyn SieveCheck>,
) {
    let mut session = Session {
        client,
        settings,
        accounts,
        sieve,
        lines: LineReader::default(),
        user: None,
    };
    let greeting = session.capabilities(conn.is_tls()) + "OK \"Posthorn ManageSieve ready.\"\r\n";
    if conn.write_all(greeting.as_bytes()).await.is_err() {
        return;
    }
    if let Err(e) = session.run(&mut conn).await {
        info!(%client, error = %e, "ManageSieve session ended");
    }
    let _ = conn.shutdown().await;
}

struct Session {
    client: IpAddr,
    settings: Arc<Settings>,
    accounts: Arc<dyn Accounts>,
    sieve: Arc<dyn SieveCheck>,
    lines: LineReader,
    /// Who logged in, and their scripts.
    user: Option<(User, Scripts)>,
}

/// A command as read: its keyword (upper-case) and arguments.
struct Command {
    keyword: String,
    arguments: Vec<Argument>,
}

/// What reading a command gave.
enum Read {
    Command(Command),
    /// A bad command: the response to send.
    Bad(String),
    Closed,
}

/// An OK, NO or BYE response: `OK (CODE) "text"`.
fn response(status: &str, code: Option<&str>, text: &str) -> String {
    match code {
        Some(code) => format!("{status} ({code}) {}\r\n", string(text)),
        None => format!("{status} {}\r\n", string(text)),
    }
}

fn ok(text: &str) -> String {
    response("OK", None, text)
}

fn no(text: &str) -> String {
    response("NO", None, text)
}

/// The NO of a refused script operation, with its response code (§1.3).
fn refusal(error: &ScriptError) -> String {
    match error {
        ScriptError::NonExistent => response("NO", Some("NONEXISTENT"), "There is no such script."),
        ScriptError::AlreadyExists => {
            response("NO", Some("ALREADYEXISTS"), "A script of that name exists.")
        }
        ScriptError::Active => {
            response("NO", Some("ACTIVE"), "The active script cannot be deleted.")
        }
        ScriptError::Quota(code) => response("NO", Some(code), "Over the script quota."),
        ScriptError::BadName(why) => no(why),
        ScriptError::Io(_) => response("NO", Some("TRYLATER"), "The script store failed."),
    }
}

impl Session {
    async fn run<C: Connection>(&mut self, conn: &mut C) -> std::io::Result<()> {
        loop {
            let read = match tokio::time::timeout(self.settings.idle_timeout, self.read(conn)).await
            {
                Err(_) => {
                    conn.write_all(response("BYE", None, "Idle too long.").as_bytes())
                        .await?;
                    return Ok(());
                }
                Ok(read) => read?,
            };
            let command = match read {
                Read::Closed => return Ok(()),
                Read::Bad(reply) => {
                    conn.write_all(reply.as_bytes()).await?;
                    continue;
                }
                Read::Command(command) => command,
            };
            if command.keyword == "LOGOUT" {
                conn.write_all(ok("Logout completed.").as_bytes()).await?;
                return Ok(());
            }
            let reply = self.execute(command, conn).await?;
            conn.write_all(reply.as_bytes()).await?;
            conn.flush().await?;
        }
    }

    /// Reads one command, with its literals.
    async fn read<C: AsyncRead + Unpin>(&mut self, conn: &mut C) -> std::io::Result<Read> {
        let line = match self.lines.read(conn, MAX_LINE).await? {
            Line::Closed => return Ok(Read::Closed),
            Line::TooLong => return Ok(Read::Bad(no("Line too long."))),
            Line::Text(line) => line,
        };
        let (keyword, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        Ok(match self.arguments(conn, rest.to_string()).await? {
            Read::Command(command) => Read::Command(Command {
                keyword,
                arguments: command.arguments,
            }),
            other => other,
        })
    }

    /// Reads the arguments starting in `rest`, through any literals and the lines that
    /// go on after them; a command without a keyword.
    async fn arguments<C: AsyncRead + Unpin>(
        &mut self,
        conn: &mut C,
        mut rest: String,
    ) -> std::io::Result<Read> {
        let mut arguments = Vec::new();
        loop {
            match command::arguments(&rest, &mut arguments) {
                Err(why) => return Ok(Read::Bad(no(&why))),
                Ok(Tail::End) => {
                    return Ok(Read::Command(Command {
                        keyword: String::new(),
                        arguments,
                    }));
                }
                Ok(Tail::Literal(length)) => {
                    // The octets come whether we take them or not: they are read either
                    // way to stay in step. A command keeps a script's worth of them in
                    // all (a line's before login), in a few arguments at most.
                    let limit = if self.user.is_some() {
                        MAX_SCRIPT
                    } else {
                        MAX_LINE
                    };
                    let held: usize = arguments
                        .iter()
                        .map(|a| match a {
                            Argument::Text(text) => text.len(),
                            Argument::Atom(_) => 0,
                        })
                        .sum();
                    let room = arguments.len() < MAX_ARGUMENTS;
                    let keep = if room { limit.saturating_sub(held) } else { 0 };
                    let Some(octets) = self.lines.read_octets(conn, length, keep).await? else {
                        return Ok(Read::Closed);
                    };
                    let Some(octets) = octets.filter(|_| room) else {
                        self.lines.read(conn, MAX_LINE).await?;
                        return Ok(Read::Bad(response(
                            "NO",
                            Some("QUOTA/MAXSIZE"),
                            "Too large.",
                        )));
                    };
                    arguments.push(Argument::Text(octets));
                    rest = match self.lines.read(conn, MAX_LINE).await? {
                        Line::Closed => return Ok(Read::Closed),
                        Line::TooLong => return Ok(Read::Bad(no("Line too long."))),
                        Line::Text(line) => line,
                    };
                }
            }
        }
    }

    /// The capability lines (§1.7), without the final OK.
    fn capabilities(&self, tls: bool) -> String {
        let sasl = if tls || self.settings.plaintext_auth || self.user.is_some() {
            "PLAIN"
        } else {
            ""
        };
        let mut text = format!(
            "\"IMPLEMENTATION\" \"Posthorn\"\r\n\"SIEVE\" {}\r\n\"SASL\" \"{sasl}\"\r\n",
            string(&self.sieve.extensions())
        );
        if self.settings.starttls && !tls && self.user.is_none() {
            text.push_str("\"STARTTLS\"\r\n");
        }
        text.push_str("\"VERSION\" \"1.0\"\r\n\"UNAUTHENTICATE\"\r\n");
        text
    }

    async fn execute<C: Connection>(
        &mut self,
        command: Command,
        conn: &mut C,
    ) -> std::io::Result<String> {
        let args = &command.arguments;
        let texts: Option<Vec<String>> = args.iter().map(Argument::text).collect();
        let Some(texts) = texts else {
            return Ok(no("Strings must be UTF-8 (RFC 5804 section 1.6)."));
        };
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        match (command.keyword.as_str(), texts.as_slice()) {
            ("CAPABILITY", []) => {
                Ok(self.capabilities(conn.is_tls()) + &ok("Capability completed."))
            }
            ("NOOP", []) => Ok(ok("Done.")),
            ("NOOP", [tag]) => Ok(response(
                "OK",
                Some(&format!("TAG {}", string(tag))),
                "Done.",
            )),
            ("STARTTLS", []) => {
                if !self.settings.starttls || conn.is_tls() || self.user.is_some() {
                    return Ok(no("STARTTLS is not available."));
                }
                conn.write_all(ok("Begin TLS negotiation now.").as_bytes())
                    .await?;
                conn.flush().await?;
                self.lines.clear();
                conn.start_tls().await?;
                // §2.2: the capabilities again, as they are now.
                Ok(self.capabilities(true) + &ok("TLS negotiation successful."))
            }
            ("AUTHENTICATE", [mechanism, initial @ ..]) if self.user.is_none() => {
                self.authenticate(conn, mechanism, initial.first().copied())
                    .await
            }
            ("UNAUTHENTICATE", []) if self.user.is_some() => {
                self.user = None;
                Ok(ok("Unauthenticate completed."))
            }
            (_, _) if self.user.is_none() => Ok(no("Log in first (AUTHENTICATE).")),
            (keyword, texts) => Ok(self.scripts(keyword, texts).await),
        }
    }

    /// SASL PLAIN (§2.1), with the response on the line or after an empty challenge.
    async fn authenticate<C: Connection>(
        &mut self,
        conn: &mut C,
        mechanism: &str,
        initial: Option<&str>,
    ) -> std::io::Result<String> {
        if !conn.is_tls() && !self.settings.plaintext_auth {
            return Ok(response(
                "NO",
                Some("ENCRYPT-NEEDED"),
                "Use STARTTLS first.",
            ));
        }
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return Ok(no("Unsupported SASL mechanism."));
        }
        let answer = match initial {
            Some(initial) => initial.to_string(),
            None => {
                conn.write_all(b"\"\"\r\n").await?;
                conn.flush().await?;
                let line = match self.lines.read(conn, MAX_LINE).await? {
                    Line::Text(line) => line,
                    Line::TooLong | Line::Closed => return Ok(no("Authentication cancelled.")),
                };
                // The answer is a string alone on its line (or a literal).
                match self.arguments(conn, line).await? {
                    Read::Closed => return Ok(no("Authentication cancelled.")),
                    Read::Bad(reply) => return Ok(reply),
                    Read::Command(answer) => match answer.arguments.as_slice() {
                        [answer] => answer.text().unwrap_or_default(),
                        _ => return Ok(no("Malformed SASL response.")),
                    },
                }
            }
        };
        if answer == "*" {
            return Ok(no("Authentication cancelled."));
        }
        let credentials = posthorn_proto::sasl::decode_response(&answer)
            .ok()
            .and_then(|bytes| posthorn_proto::sasl::parse_plain(&bytes).ok());
        let Some(credentials) = credentials else {
            return Ok(no("Malformed PLAIN response."));
        };
        Ok(self.login(credentials).await)
    }

    async fn login(&mut self, credentials: Credentials) -> String {
        let login = credentials.username.clone();
        match self.accounts.login(self.client, credentials).await {
            Login::Accepted(user) => {
                info!(client = %self.client, user = %user.name, login, "ManageSieve login");
                let scripts = Scripts::of(user.mailbox.root());
                self.user = Some((user, scripts));
                ok("Logged in.")
            }
            Login::Rejected => no("Authentication failed."),
            Login::Blocked => response("BYE", Some("TRYLATER"), "Too many failed logins."),
        }
    }

    /// The commands of the authenticated state (§2.3-§2.12), on the account's scripts.
    async fn scripts(&mut self, keyword: &str, args: &[&str]) -> String {
        let Some((_, scripts)) = &self.user else {
            return no("Log in first (AUTHENTICATE).");
        };
        let scripts = scripts.clone();
        let sieve = Arc::clone(&self.sieve);
        let keyword = keyword.to_string();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || on_scripts(&scripts, sieve.as_ref(), &keyword, &args))
            .await
            .unwrap_or_else(|_| response("NO", Some("TRYLATER"), "Internal error."))
    }
}

/// One script command, on a blocking thread (the store syncs to disk).
fn on_scripts(scripts: &Scripts, sieve: &dyn SieveCheck, keyword: &str, args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let done = |result: Result<(), ScriptError>, text: &str| match result {
        Ok(()) => ok(text),
        Err(e) => refusal(&e),
    };
    match (keyword, args.as_slice()) {
        ("PUTSCRIPT", [name, script]) => match sieve.check(script) {
            Err(why) => no(&why),
            Ok(()) => done(scripts.put(name, script), "Putscript completed."),
        },
        ("CHECKSCRIPT", [script]) => match sieve.check(script) {
            Err(why) => no(&why),
            Ok(()) => ok("Script is valid."),
        },
        ("HAVESPACE", [name, size]) => match size.parse::<usize>() {
            Ok(size) => done(scripts.has_space(name, size), "Putscript would succeed."),
            Err(_) => no("The size must be a number."),
        },
        ("LISTSCRIPTS", []) => match scripts.list() {
            Ok(list) => {
                let mut text = String::new();
                for (name, active) in list {
                    text.push_str(&string(&name));
                    text.push_str(if active { " ACTIVE\r\n" } else { "\r\n" });
                }
                text + &ok("Listscripts completed.")
            }
            Err(e) => refusal(&ScriptError::Io(e)),
        },
        ("SETACTIVE", [name]) => {
            let name = Some(*name).filter(|n| !n.is_empty());
            done(scripts.set_active(name), "Setactive completed.")
        }
        ("GETSCRIPT", [name]) => match scripts.get(name) {
            Ok(script) => {
                format!("{{{}}}\r\n{script}\r\n", script.len()) + &ok("Getscript completed.")
            }
            Err(e) => refusal(&e),
        },
        ("DELETESCRIPT", [name]) => done(scripts.delete(name), "Deletescript completed."),
        ("RENAMESCRIPT", [old, new]) => done(scripts.rename(old, new), "Renamescript completed."),
        (
            "PUTSCRIPT" | "CHECKSCRIPT" | "HAVESPACE" | "LISTSCRIPTS" | "SETACTIVE" | "GETSCRIPT"
            | "DELETESCRIPT" | "RENAMESCRIPT",
            _,
        ) => no("Wrong number of arguments."),
        _ => no("Unknown command."),
    }
}
