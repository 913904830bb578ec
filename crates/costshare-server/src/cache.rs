//! Answers kept in memory per journal head. A read first asks the database
//! for the head (seq and hash); an answer computed at that head is served
//! again until the head moves, and then everything kept is dropped. The
//! journal is append-only and the hash chains every entry, so an answer
//! computed at a head is right for as long as that head is the head.

use costshare_app::run::Run;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A rendered answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub content_type: &'static str,
    pub body: Arc<Vec<u8>>,
    /// A file name to offer (`Content-Disposition: attachment`).
    pub download: Option<String>,
}

/// At most this many answers per head.
const MAX_ANSWERS: usize = 512;

#[derive(Default)]
struct Inner {
    head: String,
    answers: HashMap<String, Answer>,
    /// The allocation of every line at an as-of date (scoped reads and
    /// what-if start from it).
    runs: HashMap<String, Arc<Run>>,
}

/// Free the runs of an old head on a thread of their own. A run holds every
/// line of the ledger: freeing one of a million lines took about 0.1 s, and
/// that happened under the cache's lock on the runtime's worker thread of
/// the first read after a write, stalling every request meanwhile
/// (BENCHMARKS.md, "Server (issue 11)"). If no thread can be started, they
/// are freed here.
fn discard(old: HashMap<String, Arc<Run>>) {
    if old.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("cache-free".into())
        .spawn(move || drop(old));
}

/// The cache of one server process.
#[derive(Default)]
pub struct Cache {
    inner: Mutex<Inner>,
}

impl Cache {
    fn at<'a>(inner: &'a mut Inner, head: &str) -> &'a mut Inner {
        if inner.head != head {
            inner.head = head.to_string();
            inner.answers.clear();
            discard(std::mem::take(&mut inner.runs));
        }
        inner
    }
    pub fn get(&self, head: &str, key: &str) -> Option<Answer> {
        let mut g = self.inner.lock().ok()?;
        Cache::at(&mut g, head).answers.get(key).cloned()
    }
    pub fn put(&self, head: &str, key: String, a: Answer) {
        if let Ok(mut g) = self.inner.lock() {
            let inner = Cache::at(&mut g, head);
            if inner.answers.len() >= MAX_ANSWERS {
                inner.answers.clear();
            }
            inner.answers.insert(key, a);
        }
    }
    pub fn run(&self, head: &str, as_of: &str) -> Option<Arc<Run>> {
        let mut g = self.inner.lock().ok()?;
        Cache::at(&mut g, head).runs.get(as_of).cloned()
    }
    pub fn put_run(&self, head: &str, as_of: &str, r: Arc<Run>) {
        if let Ok(mut g) = self.inner.lock() {
            let inner = Cache::at(&mut g, head);
            if inner.runs.len() >= 4 {
                discard(std::mem::take(&mut inner.runs));
            }
            inner.runs.insert(as_of.to_string(), r);
        }
    }
}
