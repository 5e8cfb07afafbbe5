//! A message's file name as a folder's listing holds it: a piece of one buffer shared by
//! the whole listing. A SELECT of a 100 000-message folder made 100 000 strings for the
//! index's names and 100 000 more for the session's copy; the heap they left in pieces
//! was the server's memory varying from 19 to 40 MiB after such sessions. Now the index
//! reads its names into one buffer, and the listing and the session's messages point
//! into it.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

/// A file name, shared with the other names read with it: 16 octets beside the buffer.
#[derive(Clone)]
pub struct FileName {
    buffer: Arc<String>,
    start: u32,
    end: u32,
}

impl FileName {
    /// The name at `range` of `buffer`; `None` unless the range lies inside it on
    /// character boundaries.
    pub(crate) fn within(buffer: &Arc<String>, range: Range<usize>) -> Option<FileName> {
        buffer.get(range.clone())?;
        Some(FileName {
            buffer: Arc::clone(buffer),
            start: u32::try_from(range.start).ok()?,
            end: u32::try_from(range.end).ok()?,
        })
    }
}

impl Deref for FileName {
    type Target = str;

    fn deref(&self) -> &str {
        // The range was checked when the name was made.
        self.buffer
            .get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

impl AsRef<str> for FileName {
    fn as_ref(&self) -> &str {
        self
    }
}

impl AsRef<std::path::Path> for FileName {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&**self)
    }
}

impl From<String> for FileName {
    /// A name of its own (a file name is far below 4 GiB).
    fn from(name: String) -> FileName {
        let end = u32::try_from(name.len()).unwrap_or(u32::MAX);
        FileName {
            buffer: Arc::new(name),
            start: 0,
            end,
        }
    }
}

impl From<&str> for FileName {
    fn from(name: &str) -> FileName {
        FileName::from(name.to_string())
    }
}

impl PartialEq for FileName {
    fn eq(&self, other: &FileName) -> bool {
        **self == **other
    }
}

impl Eq for FileName {}

impl PartialEq<str> for FileName {
    fn eq(&self, other: &str) -> bool {
        &**self == other
    }
}

impl PartialEq<&str> for FileName {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

impl PartialEq<String> for FileName {
    fn eq(&self, other: &String) -> bool {
        **self == **other
    }
}

impl PartialEq<FileName> for String {
    fn eq(&self, other: &FileName) -> bool {
        **self == **other
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_their_buffer() {
        let buffer = Arc::new("a:2,Sbcé".to_string());
        let names: Vec<FileName> = [0..4, 4..5, 5..7]
            .into_iter()
            .map(|range| FileName::within(&buffer, range).unwrap())
            .collect();
        assert_eq!(names, [FileName::from("a:2,"), "S".into(), "bc".into()]);
        assert!(Arc::ptr_eq(&names[0].buffer, &names[2].buffer));
        assert_eq!(names[2].to_string(), "bc");
        assert!(FileName::within(&buffer, 7..8).is_none(), "not a boundary");
        assert!(FileName::within(&buffer, 7..10).is_none(), "past the end");
        assert_eq!(std::mem::size_of::<FileName>(), 16);
    }
}
