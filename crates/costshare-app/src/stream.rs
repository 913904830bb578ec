//! The streaming driver of the file report: reads any `Read` in 8 MiB
//! blocks, cuts each block at line breaks into one piece per thread, and
//! feeds `costshare_core::stream` workers. No line is kept unless the
//! agreement has caps (then compact columns). Bad rows are named by the
//! workers; an uncapped agreement with replaced lines reads the file twice.

use costshare_core::costs::RowError;
use costshare_core::stream::{Fallback, Plan, Settled, StreamReport, Worker};
use std::io::{Read, Seek, SeekFrom};

const BLOCK: usize = 8 << 20;

/// Fill `buf` to about `BLOCK` bytes; true at the end of the input.
fn fill(reader: &mut dyn Read, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    while buf.len() < BLOCK {
        let have = buf.len();
        buf.resize(have.max(BLOCK), 0);
        let n = match reader.read(&mut buf[have..]) {
            Ok(n) => n,
            // a signal, not the end of the input: read again
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                buf.truncate(have);
                continue;
            }
            Err(e) => {
                buf.truncate(have);
                return Err(e);
            }
        };
        buf.truncate(have + n);
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Cut `block` into at most `n` pieces that each end at a line break.
fn pieces(block: &[u8], n: usize) -> Vec<&[u8]> {
    if n <= 1 || block.len() <= 1 << 16 {
        return vec![block];
    }
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for k in 1..n {
        let target = block.len() * k / n;
        if target <= start {
            continue;
        }
        // just after the first line break at or after the target
        let cut = memchr_nl(&block[target..]).map(|i| target + i + 1);
        match cut {
            Some(c) if c > start && c < block.len() => {
                out.push(&block[start..c]);
                start = c;
            }
            _ => break,
        }
    }
    out.push(&block[start..]);
    out
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// What streaming a costs file gave.
#[derive(Debug)]
pub enum Streamed {
    Report(StreamReport),
    /// The file's bad rows, as the general parser names them.
    BadRows(Vec<RowError>),
}

/// Stream a costs CSV through a plan built from its header. `size_hint` (the
/// input's size when known) sizes the id tables. `Ok(Err(why))` when the input
/// needs the general path; `Err` when the reader fails. An uncapped
/// agreement with replaced lines reads the input a second time (from its
/// start) to take those lines back out.
pub fn report<'a, R: Read + Seek>(
    make_plan: impl FnOnce(&[u8]) -> Result<Plan<'a>, Fallback>,
    reader: &mut R,
    size_hint: usize,
    threads: usize,
) -> std::io::Result<Result<Streamed, Fallback>> {
    let threads = threads.max(1);
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK.min(size_hint + 1) + 4096);
    let eof = fill(reader, &mut buf)?;
    let bom = if buf.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let Some(nl) = memchr_nl(&buf[bom..]) else {
        return Ok(Err(Fallback("no header line in the first block")));
    };
    let header_end = bom + nl + 1;
    let header = buf[..header_end].to_vec();
    let plan = match make_plan(&buf[bom..header_end - 1]) {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    // per worker: its share of the lines, at 40 bytes a line; the tables grow
    // past the first 8 million ids if need be, rather than guess big for long lines
    let hint = (size_hint / (40 * threads)).min(8 << 20);
    let mut workers: Vec<_> = (0..threads).map(|_| plan.worker(hint)).collect();
    if let Err(why) = feed_body(&plan, &mut workers, reader, &mut buf, header_end, eof)? {
        return Ok(Err(why));
    }
    let again = match plan.settle(workers, threads) {
        Ok(Settled::Report(r)) => return Ok(Ok(Streamed::Report(r))),
        Ok(Settled::BadRows(errors)) => return Ok(Ok(Streamed::BadRows(errors))),
        Ok(Settled::ReadAgain(again)) => again,
        Err(why) => return Ok(Err(why)),
    };
    // the replaced lines of an uncapped agreement were totalled: read the
    // body again and take them out
    reader.seek(SeekFrom::Start(0))?;
    buf.clear();
    let eof = fill(reader, &mut buf)?;
    if !buf.starts_with(&header) {
        return Ok(Err(Fallback("the file changed while read")));
    }
    let mut undo: Vec<_> = (0..threads).map(|_| plan.undo_worker(&again)).collect();
    if let Err(why) = feed_body(&plan, &mut undo, reader, &mut buf, header_end, eof)? {
        return Ok(Err(why));
    }
    Ok(plan.finish_again(again, undo, threads).map(Streamed::Report))
}

/// Feed the body (from `start` in `buf`, the rest still in `reader`) to the
/// workers, block by block, each block cut into one piece per worker; the
/// pieces' lines are numbered (the header is line 1).
fn feed_body(
    plan: &Plan<'_>,
    workers: &mut [Worker],
    reader: &mut dyn Read,
    buf: &mut Vec<u8>,
    mut start: usize,
    mut eof: bool,
) -> std::io::Result<Result<(), Fallback>> {
    let mut line = 2;
    loop {
        let end = if eof {
            buf.len()
        } else {
            match buf[start..].iter().rposition(|&b| b == b'\n') {
                Some(i) => start + i + 1,
                // a line longer than a block: the general reader takes it
                None => return Ok(Err(Fallback("a line longer than a block"))),
            }
        };
        let parts = pieces(&buf[start..end], workers.len());
        let ok = if parts.len() == 1 {
            workers[0].feed(plan, parts[0])
        } else {
            std::thread::scope(|s| {
                let mut rest = workers.iter_mut().zip(&parts);
                let first = rest.next();
                let handles: Vec<_> = rest.map(|(w, p)| s.spawn(move || w.feed(plan, p))).collect();
                let mut r = match first {
                    Some((w, p)) => w.feed(plan, p),
                    None => Ok(()),
                };
                for h in handles {
                    let r1 = h.join().unwrap_or(Err(Fallback("a worker panicked")));
                    r = r.and(r1);
                }
                r
            })
        };
        if let Err(why) = ok {
            return Ok(Err(why));
        }
        // the pieces follow each other: number their lines in order
        for w in workers.iter_mut().take(parts.len()) {
            line += w.place(line);
        }
        if eof {
            return Ok(Ok(()));
        }
        buf.drain(..end);
        start = 0;
        eof = fill(reader, buf)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader interrupted by a signal mid-file is read on, never taken for
    /// the end of the input.
    #[test]
    fn an_interrupted_read_is_not_the_end() {
        struct Flaky(std::io::Cursor<Vec<u8>>, bool);
        impl Read for Flaky {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.1 = !self.1;
                if self.1 {
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
                let n = b.len().min(7);
                self.0.read(&mut b[..n])
            }
        }
        let data = b"id,date\nL1,2022-04-01\nL2,2022-04-02\n".to_vec();
        let mut r = Flaky(std::io::Cursor::new(data.clone()), false);
        let mut buf = Vec::new();
        assert!(fill(&mut r, &mut buf).unwrap());
        assert_eq!(buf, data);
    }

    #[test]
    fn pieces_end_at_line_breaks_and_cover_the_block() {
        let mut block = Vec::new();
        for i in 0..20_000 {
            block.extend_from_slice(format!("L{i},2022-04-01,x,{i}\n").as_bytes());
        }
        for n in 1..=5 {
            let p = pieces(&block, n);
            assert!(p.len() <= n && !p.is_empty());
            assert_eq!(p.iter().map(|x| x.len()).sum::<usize>(), block.len());
            for x in &p {
                assert_eq!(x.last(), Some(&b'\n'));
            }
            if n > 1 {
                assert_eq!(p.len(), n, "a block of {} bytes splits {n} ways", block.len());
            }
        }
    }
}
