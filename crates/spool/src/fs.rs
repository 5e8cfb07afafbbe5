//! The embedded queue store: one file per message in a spool folder, the way Postfix and
//! qmail keep their queues.
//!
//! Layout under the spool folder:
//! - `<id>`: a committed message: the content as received, then the envelope as JSON, then
//!   a footer (magic, content length, envelope length, checksum, magic); the magic holds
//!   the format version (see `format`). It is received into a pool file (`pool`), renamed
//!   to this name once its content is durable, or, when the pool is empty, into an unnamed
//!   file (`unnamed`) that appears under this name, by a link, only once written in full,
//!   made durable with its content by the group committer before the commit returns.
//! - `.pool-<n>`: files named ahead of the mail they will hold (`pool`); `.pool-of-<id>`,
//!   the file of a delivered message, kept for the next one.
//! - `<id>.state`: the recipients' delivery state once it has changed (JSON, see `format`),
//!   replaced atomically:
//!   written in `tmp/`, then synced, renamed and its name synced by the group committer.
//! - `tmp/`: state files being written. Never read; wiped at start-up.
//! - `corrupt/<id>`: a file that failed to parse, set aside for the operator, never deleted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::durable::{FooterAt, GroupCommit, Ticket, finish_file};
use crate::envelope::Envelope;
use crate::format::{self, Checksum, FOOTER_LEN};
use crate::id::{IdGenerator, QueueId};
use crate::pool::{self, Pool, PoolFile};
use crate::{Content, MessageWriter, QueueStore, invalid, unnamed};

const STATE_SUFFIX: &str = ".state";

/// The spool folder, an open handle on it, and its group committer.
#[derive(Debug)]
struct Folder {
    root: PathBuf,
    tmp: PathBuf,
    handle: File,
    /// Absent only for filling test and benchmark queues quickly.
    committer: Option<GroupCommit>,
    /// Files named ahead of their messages; started by `recover`, with the committer.
    pool: OnceLock<Pool>,
}

impl Folder {
    fn sync(&self) -> io::Result<()> {
        if self.committer.is_some() {
            self.handle.sync_all()
        } else {
            Ok(())
        }
    }

    /// Moves a fully written file into place; returns once it is durable there.
    fn publish(&self, from: PathBuf, to: PathBuf) -> io::Result<()> {
        match &self.committer {
            Some(committer) => committer.rename(from, to),
            None => fs::rename(from, to),
        }
    }

    fn message(&self, id: &QueueId) -> PathBuf {
        self.root.join(id.as_str())
    }

    fn corrupt(&self) -> PathBuf {
        self.root.join("corrupt")
    }

    fn state(&self, id: &QueueId) -> PathBuf {
        self.root.join(format!("{id}{STATE_SUFFIX}"))
    }
}

/// The file-based queue store.
#[derive(Debug)]
pub struct FsQueueStore {
    folder: Arc<Folder>,
    ids: IdGenerator,
}

impl FsQueueStore {
    /// Opens (creating if needed) the spool under `root`. Call `recover` before use.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        Self::open_with(root.into(), true)
    }

    /// A spool that never fsyncs. Never for real mail: it exists to fill test and benchmark
    /// queues with a million messages in seconds rather than minutes.
    pub fn open_without_fsync(root: impl Into<PathBuf>) -> io::Result<Self> {
        Self::open_with(root.into(), false)
    }

    fn open_with(root: PathBuf, durable: bool) -> io::Result<Self> {
        let tmp = root.join("tmp");
        for dir in [&root, &tmp] {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        let handle = File::open(&root)?;
        unnamed::check(&handle, &tmp.join("probe"))?;
        // The folders' own entries must be durable before any message is.
        handle.sync_all()?;
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)?.sync_all()?;
        }
        let committer = if durable {
            Some(GroupCommit::start(File::open(&root)?)?)
        } else {
            None
        };
        Ok(FsQueueStore {
            folder: Arc::new(Folder {
                root,
                tmp,
                handle,
                committer,
                pool: OnceLock::new(),
            }),
            ids: IdGenerator::default(),
        })
    }

    /// The spool folder.
    pub fn root(&self) -> &Path {
        &self.folder.root
    }

    fn scan(&self) -> io::Result<(Vec<QueueId>, Vec<QueueId>)> {
        let mut messages = Vec::new();
        let mut states = Vec::new();
        for entry in fs::read_dir(&self.folder.root)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(STATE_SUFFIX) {
                if let Ok(id) = QueueId::try_from(stem.to_string()) {
                    states.push(id);
                }
            } else if let Ok(id) = QueueId::try_from(name.to_string()) {
                messages.push(id);
            }
        }
        messages.sort();
        Ok((messages, states))
    }
}

impl QueueStore for FsQueueStore {
    fn new_id(&self) -> QueueId {
        self.ids.generate()
    }

    fn writer(&self, id: QueueId) -> io::Result<Box<dyn MessageWriter>> {
        Ok(Box::new(FsWriter {
            folder: Arc::clone(&self.folder),
            id,
            file: None,
            written: 0,
            checksum: Checksum::default(),
        }))
    }

    fn recover(&self) -> io::Result<Vec<QueueId>> {
        for entry in fs::read_dir(&self.folder.tmp)? {
            fs::remove_file(entry?.path())?;
        }
        if pool::recover(&self.folder.root, &self.folder.corrupt())? {
            self.folder.sync()?;
        }
        if self.folder.committer.is_some() && self.folder.pool.get().is_none() {
            let pool = Pool::start(&self.folder.root, File::open(&self.folder.root)?)?;
            let _ = self.folder.pool.set(pool);
        }
        let (messages, states) = self.scan()?;
        for id in &states {
            if messages.binary_search(id).is_err() {
                fs::remove_file(self.folder.state(id))?;
            }
        }
        for id in &messages {
            self.ids.observe(id);
        }
        Ok(messages)
    }

    fn ids(&self) -> io::Result<Vec<QueueId>> {
        Ok(self.scan()?.0)
    }

    fn load(&self, id: &QueueId) -> io::Result<Envelope> {
        let file = File::open(self.folder.message(id))?;
        let footer = format::read_footer(&file)?;
        let mut json = vec![0; usize::try_from(footer.envelope_len).map_err(invalid)?];
        file.read_exact_at(&mut json, footer.content_len)?;
        let mut envelope = format::decode_envelope(&json)?;
        if envelope.id != *id {
            return Err(invalid("envelope names another queue id"));
        }
        match fs::read(self.folder.state(id)) {
            Ok(bytes) => {
                if !format::decode_state(&bytes)?.apply(&mut envelope) {
                    return Err(invalid("state file does not match the recipients"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(envelope)
    }

    fn content(&self, id: &QueueId) -> io::Result<Content> {
        let mut file = File::open(self.folder.message(id))?;
        let len = format::read_footer(&file)?.content_len;
        file.seek(SeekFrom::Start(0))?;
        Ok(Content {
            reader: Box::new(file.take(len)),
            len,
        })
    }

    fn save_state(&self, envelope: &Envelope) -> io::Result<()> {
        let json = format::encode_state(envelope)?;
        let tmp = self
            .folder
            .tmp
            .join(format!("{}{STATE_SUFFIX}", envelope.id));
        let mut file = create_file(&tmp)?;
        // The group committer syncs the content before the rename (see `durable`): renamed
        // over the old state first, a crash could leave `ID.state` empty, and a state that
        // cannot be read sets the whole message aside.
        let written = file.write_all(&json);
        drop(file);
        if let Err(e) = written {
            // The name is reused: a failed write must not stay in the way of the next one.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.folder.publish(tmp, self.folder.state(&envelope.id))
    }

    fn remove(&self, id: &QueueId) -> io::Result<()> {
        // Message first: a state file left behind alone is cleaned at recovery. Without a
        // folder fsync a crash may bring the message back; that repeats a delivery, the
        // one failure the design allows. Its file goes to the pool when it can.
        let message = self.folder.message(id);
        let recycled = match self.folder.pool.get() {
            Some(pool) => pool.recycle(&message, id.as_str())?,
            None => false,
        };
        if !recycled {
            fs::remove_file(message)?;
        }
        match fs::remove_file(self.folder.state(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn quarantine(&self, id: &QueueId) -> io::Result<()> {
        let corrupt = self.folder.corrupt();
        fs::create_dir_all(&corrupt)?;
        fs::rename(self.folder.message(id), corrupt.join(id.as_str()))?;
        if let Err(e) = fs::rename(
            self.folder.state(id),
            corrupt.join(format!("{id}{STATE_SUFFIX}")),
        ) && e.kind() != io::ErrorKind::NotFound
        {
            return Err(e);
        }
        self.folder.sync()
    }
}

/// Receives one message into a pool file, or an unnamed one when the pool is empty, taken
/// at the first write; dropped before its commit, it leaves nothing behind.
struct FsWriter {
    folder: Arc<Folder>,
    id: QueueId,
    file: Option<Receiving>,
    written: u64,
    /// Of everything written so far, for the footer.
    checksum: Checksum,
}

/// The file a message is received into.
enum Receiving {
    Pooled(PoolFile),
    Unnamed(File),
}

impl Receiving {
    fn file(&mut self) -> &mut File {
        match self {
            Receiving::Pooled(pooled) => &mut pooled.file,
            Receiving::Unnamed(file) => file,
        }
    }
}

impl Folder {
    /// A file to receive a message into: from the pool when it has one.
    fn receiving(&self) -> io::Result<Receiving> {
        match self.pool.get().and_then(Pool::take) {
            Some(pooled) => Ok(Receiving::Pooled(pooled)),
            None => Ok(Receiving::Unnamed(unnamed::create_in(&self.handle)?)),
        }
    }
}

impl FsWriter {
    fn file(&mut self) -> io::Result<&mut File> {
        match &mut self.file {
            Some(receiving) => Ok(receiving.file()),
            slot => Ok(slot.insert(self.folder.receiving()?).file()),
        }
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if let (Some(Receiving::Pooled(pooled)), Some(pool)) =
            (self.file.take(), self.folder.pool.get())
        {
            pool.give_back(pooled);
        }
    }
}

impl Write for FsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file()?.write(buf)?;
        self.checksum.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MessageWriter for FsWriter {
    fn id(&self) -> &QueueId {
        &self.id
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn read_back(&mut self, len: u64) -> io::Result<Vec<u8>> {
        let mut content = Vec::new();
        if let Some(receiving) = &mut self.file {
            let len = usize::try_from(len.min(self.written)).map_err(invalid)?;
            content.resize(len, 0);
            receiving.file().read_exact_at(&mut content, 0)?;
        }
        Ok(content)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        if len >= self.written {
            return Ok(());
        }
        if let Some(Receiving::Pooled(pooled)) = &mut self.file {
            pooled.capacity = pooled.capacity.min(len);
        }
        let file = self.file()?;
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        self.checksum = format::checksum_of(file, len)?;
        self.written = len;
        Ok(())
    }

    fn commit(mut self: Box<Self>, tail: Vec<u8>, envelope: &Envelope) -> Ticket {
        let json = match format::encode_envelope(envelope) {
            Ok(json) => json,
            Err(e) => return Ticket::ready(Err(e)),
        };
        let content_len = self.written + tail.len() as u64;
        self.checksum.update(&tail);
        self.checksum.update(&json);
        let end = content_len + json.len() as u64;
        let file = match self.file.take() {
            Some(receiving) => Some(receiving),
            None => self
                .folder
                .pool
                .get()
                .and_then(Pool::take)
                .map(Receiving::Pooled),
        };
        let footer_at = match &file {
            Some(Receiving::Pooled(pooled)) => pooled.footer_at(end),
            _ => end,
        };
        let footer = format::footer(
            content_len,
            json.len() as u64,
            self.checksum.value(),
            footer_at > end,
        );
        let mut bytes = tail;
        bytes.reserve(json.len() + FOOTER_LEN as usize);
        bytes.extend_from_slice(&json);
        // The group committer writes the rest, names the file and makes it durable
        // together with every other commit of the moment (see `durable`).
        let path = self.folder.message(&self.id);
        match (&self.folder.committer, file) {
            (Some(committer), Some(Receiving::Pooled(pooled))) => {
                let footer = FooterAt {
                    octets: footer,
                    at: footer_at,
                };
                committer.finish_pooled(pooled, path, bytes, footer)
            }
            (committer, file) => {
                bytes.extend_from_slice(&footer);
                // Without a committer there is no pool, so no pool file either.
                let unnamed = match file {
                    Some(Receiving::Unnamed(file)) => Some(file),
                    _ => None,
                };
                match committer {
                    Some(committer) => committer.finish(unnamed, path, bytes),
                    None => Ticket::ready(finish_file(&self.folder.handle, unnamed, &path, &bytes)),
                }
            }
        }
    }
}

/// A new private file at `path`, readable too, so a check can read back what was written
/// (`read_back`).
pub(crate) fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}
