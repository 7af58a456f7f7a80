//! The jobs between the input reader and the workers. The reader is a
//! blocking thread (it reads a file); rows cross to the workers in batches,
//! so that thread is woken once a batch rather than once a row: a wake-up per
//! row cost more than a request's own bookkeeping.

use tokio::sync::mpsc;

use crate::input::reader::Row;

/// Rows per handoff: a few hundred microseconds of work at full speed, so
/// the workers never wait long on a batch, and a small share of the queue.
const BATCH: usize = 64;

/// A queue holding about `depth` rows.
pub fn channel(depth: usize) -> (Feeder, Queue) {
    let (batches, receiver) = mpsc::channel((depth / BATCH).max(1));
    (
        Feeder { batches, pending: Vec::with_capacity(BATCH) },
        Queue { batches: receiver, current: Vec::new().into_iter() },
    )
}

/// The reader's end.
pub struct Feeder {
    batches: mpsc::Sender<Vec<Row>>,
    pending: Vec<Row>,
}

impl Feeder {
    /// Queues a row, waiting while the queue is full. `false` once the
    /// workers are gone.
    pub fn blocking_push(&mut self, row: Row) -> bool {
        self.pending.push(row);
        self.pending.len() < BATCH || self.blocking_send()
    }

    /// Queues the last rows. Without it they are dropped, as when a run stops.
    pub fn blocking_finish(mut self) {
        if !self.pending.is_empty() {
            // Workers that are gone have nothing left to take.
            self.blocking_send();
        }
    }

    fn blocking_send(&mut self) -> bool {
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
        self.batches.blocking_send(batch).is_ok()
    }
}

/// The workers' end, shared by them all behind a lock.
pub struct Queue {
    batches: mpsc::Receiver<Vec<Row>>,
    current: std::vec::IntoIter<Row>,
}

impl Queue {
    /// The next row; `None` once the reader is done and every row is taken.
    pub async fn next(&mut self) -> Option<Row> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(row);
            }
            self.current = self.batches.recv().await?.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u64) -> Row {
        Row {
            line,
            zone: "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap(),
            cert: "568b6b74-7b0c-4755-8840-4e3b8c24adeb".parse().unwrap(),
        }
    }

    #[test]
    fn every_row_arrives_once_in_order() {
        let (mut feeder, mut queue) = channel(1024);
        let rows = 2 * BATCH as u64 + 3;
        let reader = std::thread::spawn(move || {
            assert!((1..=rows).all(|line| feeder.blocking_push(row(line))));
            feeder.blocking_finish();
        });
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let lines: Vec<u64> = runtime.block_on(async {
            let mut lines = vec![];
            while let Some(row) = queue.next().await {
                lines.push(row.line);
            }
            lines
        });
        reader.join().unwrap();
        assert_eq!(lines, (1..=rows).collect::<Vec<_>>());
    }

    #[test]
    fn the_reader_learns_when_the_workers_are_gone() {
        let (mut feeder, queue) = channel(1024);
        drop(queue);
        assert!(!(0..BATCH as u64).all(|line| feeder.blocking_push(row(line))));
    }
}
