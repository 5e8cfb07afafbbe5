//! The `posthorn` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use posthorn::admin::{self, Request};
use posthorn::config::Config;
use tracing_subscriber::EnvFilter;

/// sysexits.h EX_CONFIG: the configuration is wrong.
const EX_CONFIG: u8 = 78;
/// sysexits.h EX_SOFTWARE: the server failed.
const EX_SOFTWARE: u8 = 70;
/// sysexits.h EX_UNAVAILABLE: no server to talk to.
const EX_UNAVAILABLE: u8 = 69;

#[derive(Parser)]
#[command(name = "posthorn", version, about = "Posthorn mail server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (with no --config, on the embedded defaults: loopback port 2525,
    /// data under ./posthorn-data, local domain `localhost`, user `postmaster`).
    Serve {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and exit: 0 when it is valid.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// Inspect and change the queue of the running server.
    Queue {
        /// The server's configuration file (for its data folder).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: QueueAction,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Every queued message with its recipients' states (like mailq).
    List,
    /// One message in detail, with its headers.
    Show {
        /// Queue id.
        id: String,
    },
    /// Attempt delivery now: one message, or everything waiting.
    Flush {
        /// Queue id; all messages when absent.
        id: Option<String>,
    },
    /// Keep a message out of delivery until released.
    Hold {
        /// Queue id.
        id: String,
    },
    /// Put a held message back into delivery.
    Release {
        /// Queue id.
        id: String,
    },
    /// Remove a message; its sender gets a bounce unless --silent.
    Delete {
        /// Queue id.
        id: String,
        /// Do not tell the sender.
        #[arg(long)]
        silent: bool,
    },
    /// Return a message to its sender now.
    Bounce {
        /// Queue id.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: OK", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EX_CONFIG)
            }
        },
        Command::Queue {
            config,
            json,
            action,
        } => queue(config, json, action),
        Command::Serve { config } => {
            let config = match config {
                Some(path) => match Config::load(&path) {
                    Ok(config) => config,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(EX_CONFIG);
                    }
                },
                None => Config::embedded(),
            };
            let _flush_at_exit = init_logging();
            serve(config)
        }
    }
}

/// `posthorn queue ...`: one request to the running server's admin socket.
fn queue(config: Option<PathBuf>, json: bool, action: QueueAction) -> ExitCode {
    let config = match config {
        Some(path) => match Config::load(&path) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(EX_CONFIG);
            }
        },
        None => Config::embedded(),
    };
    let detailed = matches!(action, QueueAction::Show { .. });
    let request = match action {
        QueueAction::List => Request::List,
        QueueAction::Show { id } => Request::Show { id },
        QueueAction::Flush { id } => Request::Flush { id },
        QueueAction::Hold { id } => Request::Hold { id },
        QueueAction::Release { id } => Request::Release { id },
        QueueAction::Delete { id, silent } => Request::Delete { id, silent },
        QueueAction::Bounce { id } => Request::Bounce { id },
    };
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

/// Logs go to stderr through a writer thread: a busy server's sessions never wait on a
/// write(2) per log line. Lines are never dropped (a full buffer makes loggers wait), and
/// the returned guard flushes what is left when dropped at exit.
fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .init();
    guard
}

fn serve(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
