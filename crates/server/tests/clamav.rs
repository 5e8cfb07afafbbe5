//! The clamd client against a real clamd (Debian's, a private instance per test with our own
//! small signature databases: see `posthorn_testkit::clamd`) over its Unix socket and TCP,
//! and against fake clamds on loopback for what a real one does not do on demand: never
//! answering, or answering nonsense.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use posthorn::inbound::checks::clamav::{Clamd, ClamdAddress, ClamdError, Scan};
use posthorn_testkit::clamd::{
    CUSTOM_MARKER, CUSTOM_SIGNATURE, EICAR_SIGNATURE, PrivateClamd, STREAM_MAX_LENGTH, eicar,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Long enough for any scan here; the tests that expect failures check they come sooner.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The client for `clamd`'s Unix socket, written as in a configuration file.
fn unix(clamd: &PrivateClamd) -> Clamd {
    let address: ClamdAddress = format!("unix:{}", clamd.socket().display())
        .parse()
        .unwrap();
    Clamd::new(address, TIMEOUT)
}

/// The client for `clamd`'s TCP socket, written as in a configuration file.
fn tcp(clamd: &PrivateClamd) -> Clamd {
    let address: ClamdAddress = clamd.tcp_addr().to_string().parse().unwrap();
    Clamd::new(address, TIMEOUT)
}

/// A message with a text part and `attachment` as a base64-encoded attachment.
fn message_with_attachment(attachment: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(attachment);
    format!(
        "From: sender@example.test\r\n\
         To: rcpt@example.test\r\n\
         Subject: the file you asked for\r\n\
         Message-ID: <attachment@example.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"part-boundary\"\r\n\
         \r\n\
         --part-boundary\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         Here it is.\r\n\
         --part-boundary\r\n\
         Content-Type: application/octet-stream; name=\"tool.com\"\r\n\
         Content-Disposition: attachment; filename=\"tool.com\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {encoded}\r\n\
         --part-boundary--\r\n"
    )
    .into_bytes()
}

/// A plain message of about `size` octets of harmless text.
fn clean_message(size: usize) -> Vec<u8> {
    let mut message = b"From: sender@example.test\r\nTo: rcpt@example.test\r\n\
                        Subject: hello\r\n\r\n"
        .to_vec();
    let line = b"Nothing to see here, just a long and harmless letter.\r\n";
    while message.len() < size {
        message.extend_from_slice(line);
    }
    message
}

#[tokio::test]
async fn eicar_is_found_raw_and_as_a_mime_attachment() {
    let clamd = PrivateClamd::start();
    let client = unix(&clamd);
    let expected = Scan::Virus(EICAR_SIGNATURE.to_string());
    assert_eq!(client.scan(eicar().as_slice()).await.unwrap(), expected);
    let message = message_with_attachment(&eicar());
    assert_eq!(client.scan(message.as_slice()).await.unwrap(), expected);
}

#[tokio::test]
async fn our_own_signature_is_found_across_chunks_over_tcp() {
    let clamd = PrivateClamd::start();
    let client = tcp(&clamd);
    // The marker straddles the client's 64 KiB chunk boundary: clamd scans the stream, not
    // the chunks.
    let mut content = clean_message(200 * 1024);
    let at = 64 * 1024 - CUSTOM_MARKER.len() / 2;
    content.splice(at..at, CUSTOM_MARKER.iter().copied());
    let expected = Scan::Virus(CUSTOM_SIGNATURE.to_string());
    assert_eq!(client.scan(content.as_slice()).await.unwrap(), expected);
    let message = message_with_attachment(CUSTOM_MARKER);
    assert_eq!(client.scan(message.as_slice()).await.unwrap(), expected);
}

#[tokio::test]
async fn clean_messages_pass_over_both_sockets() {
    let clamd = PrivateClamd::start();
    let message = clean_message(300 * 1024);
    let attachment = message_with_attachment(b"just some bytes, nothing bad");
    for client in [unix(&clamd), tcp(&clamd)] {
        client.ping().await.unwrap();
        assert_eq!(client.scan(message.as_slice()).await.unwrap(), Scan::Clean);
        assert_eq!(
            client.scan(attachment.as_slice()).await.unwrap(),
            Scan::Clean
        );
        assert_eq!(client.scan(&b""[..]).await.unwrap(), Scan::Clean);
    }
    // As the checks will give it a spooled message: a file, read as it is sent.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &message).unwrap();
    let content = tokio::fs::File::open(file.path()).await.unwrap();
    assert_eq!(unix(&clamd).scan(content).await.unwrap(), Scan::Clean);
}

#[tokio::test]
async fn a_stream_over_stream_max_length_is_refused() {
    let clamd = PrivateClamd::start();
    let too_large = vec![b'a'; 2 * STREAM_MAX_LENGTH];
    for client in [unix(&clamd), tcp(&clamd)] {
        let result = client.scan(too_large.as_slice()).await;
        assert!(
            matches!(result, Err(ClamdError::SizeLimit)),
            "{}: {result:?}",
            client.address()
        );
    }
    let just_fits = vec![b'a'; STREAM_MAX_LENGTH];
    assert_eq!(
        unix(&clamd).scan(just_fits.as_slice()).await.unwrap(),
        Scan::Clean
    );
}

#[tokio::test]
async fn a_clamd_that_is_gone_is_a_quick_connect_error() {
    let clamd = PrivateClamd::start();
    let clients = [unix(&clamd), tcp(&clamd)];
    drop(clamd);
    for client in clients {
        let started = Instant::now();
        let scanned = client.scan(eicar().as_slice()).await;
        assert!(
            matches!(scanned, Err(ClamdError::Connect(_))),
            "{}: {scanned:?}",
            client.address()
        );
        assert!(matches!(client.ping().await, Err(ClamdError::Connect(_))));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}

/// A fake clamd on 127.0.0.1 that reads whatever comes and answers `reply` once the stream
/// has ended (never, if `reply` is `None`), and a client for it with `timeout`.
async fn fake_clamd(reply: Option<&[u8]>, timeout: Duration) -> Clamd {
    let reply = reply.map(<[u8]>::to_vec);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: ClamdAddress = listener.local_addr().unwrap().to_string().parse().unwrap();
    tokio::spawn(async move {
        let (mut connection, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        // zINSTREAM\0, then chunks until the zero-length one: here the content is short and
        // the request ends in four zero octets.
        while !request.ends_with(&[0, 0, 0, 0]) {
            let read = connection.read(&mut buffer).await.unwrap();
            assert_ne!(read, 0, "the client hung up before the end of the stream");
            request.extend_from_slice(&buffer[..read]);
        }
        match reply {
            // The client may hang up before it has read all of a long reply.
            Some(reply) => drop(connection.write_all(&reply).await),
            // Holding the connection open and silent until the client gives up.
            None => {
                while connection
                    .read(&mut buffer)
                    .await
                    .is_ok_and(|read| read > 0)
                {}
            }
        }
    });
    Clamd::new(address, timeout)
}

#[tokio::test]
async fn a_clamd_that_never_answers_is_a_timeout() {
    let timeout = Duration::from_millis(300);
    let client = fake_clamd(None, timeout).await;
    let started = Instant::now();
    let result = client.scan(&b"hello"[..]).await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(ClamdError::Timeout(t)) if t == timeout),
        "{result:?}"
    );
    assert!(took >= timeout && took < timeout * 5, "{took:?}");
}

#[tokio::test]
async fn replies_that_are_not_clamd_are_protocol_errors() {
    let ping_reply = fake_clamd(Some(b"PONG\0"), TIMEOUT).await;
    let result = ping_reply.scan(&b"hello"[..]).await;
    assert!(
        matches!(&result, Err(ClamdError::Protocol { reply }) if reply == "PONG"),
        "{result:?}"
    );
    let chatter = fake_clamd(Some(&[b'x'; 64 * 1024]), TIMEOUT).await;
    let result = chatter.scan(&b"hello"[..]).await;
    assert!(
        matches!(&result, Err(ClamdError::Protocol { reply }) if reply.len() == 4096),
        "{result:?}"
    );
    let failing = fake_clamd(
        Some(b"stream: Can't create temporary file ERROR\0"),
        TIMEOUT,
    )
    .await;
    let result = failing.scan(&b"hello"[..]).await;
    assert!(
        matches!(result, Err(ClamdError::Failed { .. })),
        "{result:?}"
    );
}
