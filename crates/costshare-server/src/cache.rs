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
            inner.runs.clear();
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
                inner.runs.clear();
            }
            inner.runs.insert(as_of.to_string(), r);
        }
    }
}
