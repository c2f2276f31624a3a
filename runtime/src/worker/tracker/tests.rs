use proptest::prelude::*;

use super::*;

fn offsets(entries: &[(&str, i32, i64)]) -> Offsets {
    let mut out = Offsets::new();
    for (t, p, o) in entries {
        out.entry(t.to_string()).or_default().insert(*p, *o);
    }
    out
}

#[test]
fn a_fresh_partition_takes_everything_and_records_where_it_ends() {
    let mut t = OffsetTracker::default();
    t.assign("t", 0, None);
    assert_eq!(t.position("t", 0), None);
    assert_eq!(t.advance("t", 0, 0, 10), Continuity::Continues);
    assert_eq!(t.pending(), offsets(&[("t", 0, 10)]));
    assert_eq!(
        t.expected(),
        Offsets::new(),
        "nothing recorded: nothing to fence on"
    );
    t.committed(&t.pending());
    assert!(!t.has_pending());
    assert_eq!(t.recorded(), offsets(&[("t", 0, 10)]));
    assert_eq!(t.position("t", 0), Some(10));
}

#[test]
fn a_run_that_does_not_continue_is_reported_as_a_gap() {
    let mut t = OffsetTracker::default();
    t.assign("t", 0, Some(5));
    assert_eq!(
        t.advance("t", 0, 8, 9),
        Continuity::Gap {
            expected: 5,
            got: 8
        }
    );
    assert_eq!(t.advance("t", 0, 9, 12), Continuity::Continues);
    assert_eq!(t.pending(), offsets(&[("t", 0, 12)]));
    assert_eq!(t.expected(), offsets(&[("t", 0, 5)]));
}

#[test]
fn records_of_a_partition_not_assigned_are_refused() {
    let mut t = OffsetTracker::default();
    assert_eq!(t.advance("t", 0, 0, 1), Continuity::Unassigned);
    assert!(!t.has_pending());
}

#[test]
fn dropping_pending_falls_back_to_the_recorded_offset() {
    let mut t = OffsetTracker::default();
    t.assign("t", 0, Some(3));
    t.assign("t", 1, None);
    t.advance("t", 0, 3, 7);
    t.advance("t", 1, 0, 4);
    t.drop_pending();
    assert_eq!(t.position("t", 0), Some(3));
    assert_eq!(t.position("t", 1), None);
    assert!(!t.has_pending());
}

#[test]
fn a_commit_keeps_what_was_read_after_it_was_prepared() {
    let mut t = OffsetTracker::default();
    t.assign("t", 0, None);
    t.advance("t", 0, 0, 5);
    let prepared = t.pending();
    t.advance("t", 0, 5, 9);
    t.committed(&prepared);
    assert_eq!(t.recorded(), offsets(&[("t", 0, 5)]));
    assert_eq!(t.pending(), offsets(&[("t", 0, 9)]));
}

#[test]
fn rebase_takes_the_tables_offsets_and_forgets_pending() {
    let mut t = OffsetTracker::default();
    t.assign("t", 0, Some(2));
    t.assign("t", 1, Some(2));
    t.advance("t", 0, 2, 6);
    t.rebase(&offsets(&[("t", 0, 9)]));
    assert_eq!(t.position("t", 0), Some(9));
    assert_eq!(
        t.position("t", 1),
        None,
        "the table records nothing for it now"
    );
    assert!(!t.has_pending());
}

#[test]
fn revoking_says_whether_records_were_still_held() {
    let mut t = OffsetTracker::default();
    t.assign("t", 0, None);
    t.assign("t", 1, None);
    t.advance("t", 0, 0, 1);
    assert!(t.revoke("t", 0));
    assert!(!t.revoke("t", 1));
    assert!(!t.revoke("t", 2));
    assert_eq!(t.assigned().count(), 0);
}

#[test]
fn the_consumer_reads_from_the_lowest_position_over_the_ports() {
    let mut a = OffsetTracker::default();
    let mut b = OffsetTracker::default();
    a.assign("t", 0, Some(10));
    b.assign("t", 0, Some(4));
    assert_eq!(read_from([&a, &b], "t", 0), Some(4));
    b.assign("t", 0, None);
    assert_eq!(read_from([&a, &b], "t", 0), None);
}

// The model: one topic of `LOG` records per partition, two output ports (each a table that
// records offsets and keeps rows), this worker, and a rival worker of the same group that
// commits a partition whenever the group gave it away (or took it from this worker without
// telling: a lost assignment). Whatever the interleaving, every offset ends in each table
// exactly once.

const PARTITIONS: i32 = 3;
const PORTS: usize = 2;
const LOG: i64 = 40;

#[derive(Debug, Clone)]
enum Step {
    /// The consumer reads up to `n` records of a partition it holds.
    Read { partition: i32, n: i64 },
    /// A port commits what it holds.
    Commit { port: usize },
    /// A port's commit fails before landing (storage down): its pending data is dropped.
    Fail { port: usize },
    /// The group takes a partition away: commit on revoke, then give it up.
    Revoke { partition: i32 },
    /// The group gives a partition to this worker.
    Assign { partition: i32 },
    /// Another member commits `n` records of a partition this worker does not hold, or holds
    /// but has lost without knowing.
    Rival { partition: i32, n: i64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..PARTITIONS, 1..8i64).prop_map(|(partition, n)| Step::Read { partition, n }),
        2 => (0..PORTS).prop_map(|port| Step::Commit { port }),
        1 => (0..PORTS).prop_map(|port| Step::Fail { port }),
        1 => (0..PARTITIONS).prop_map(|partition| Step::Revoke { partition }),
        1 => (0..PARTITIONS).prop_map(|partition| Step::Assign { partition }),
        1 => (0..PARTITIONS, 1..6i64).prop_map(|(partition, n)| Step::Rival { partition, n }),
    ]
}

#[derive(Default)]
struct Table {
    recorded: BTreeMap<i32, i64>,
    rows: Vec<(i32, i64)>,
}

impl Table {
    fn offsets(&self) -> Offsets {
        let mut out = Offsets::new();
        for (p, o) in &self.recorded {
            out.entry("t".into()).or_default().insert(*p, *o);
        }
        out
    }
}

struct Model {
    tables: Vec<Table>,
    trackers: Vec<OffsetTracker>,
    /// Rows written to each port's open files.
    files: Vec<Vec<(i32, i64)>>,
    /// The consumer's next offset per assigned partition.
    cursor: BTreeMap<i32, i64>,
}

impl Model {
    fn new() -> Self {
        Self {
            tables: (0..PORTS).map(|_| Table::default()).collect(),
            trackers: vec![OffsetTracker::default(); PORTS],
            files: vec![Vec::new(); PORTS],
            cursor: BTreeMap::new(),
        }
    }

    fn seek_all(&mut self) {
        for (p, cursor) in self.cursor.iter_mut() {
            *cursor = read_from(&self.trackers, "t", *p).unwrap_or(0);
        }
    }

    fn read(&mut self, partition: i32, n: i64) {
        let Some(cursor) = self.cursor.get_mut(&partition) else {
            return;
        };
        let first = *cursor;
        let next = (first + n).min(LOG);
        *cursor = next;
        if first >= next {
            return;
        }
        for port in 0..PORTS {
            let from = self.trackers[port]
                .position("t", partition)
                .map_or(first, |p| p.max(first));
            if from >= next {
                continue;
            }
            self.files[port].extend((from..next).map(|o| (partition, o)));
            let continuity = self.trackers[port].advance("t", partition, from, next);
            assert_eq!(continuity, Continuity::Continues, "a log without gaps");
        }
    }

    /// Returns false if the commit was fenced (the port then rebased).
    fn commit(&mut self, port: usize) -> bool {
        let tracker = &mut self.trackers[port];
        if !tracker.has_pending() {
            return true;
        }
        let next = tracker.pending();
        let expected = tracker.expected();
        let table = &mut self.tables[port];
        let fenced = next.get("t").into_iter().flatten().any(|(p, _)| {
            let now = table.recorded.get(p).copied();
            let want = expected.get("t").and_then(|e| e.get(p)).copied();
            now.is_some() && now != want
        });
        if fenced {
            tracker.rebase(&table.offsets());
            self.files[port].clear();
            self.seek_all();
            return false;
        }
        table.rows.append(&mut self.files[port]);
        for (p, o) in next.get("t").into_iter().flatten() {
            table.recorded.insert(*p, *o);
        }
        tracker.committed(&next);
        true
    }

    fn fail(&mut self, port: usize) {
        self.trackers[port].drop_pending();
        self.files[port].clear();
        self.seek_all();
    }

    fn revoke(&mut self, partition: i32) {
        if !self.cursor.contains_key(&partition) {
            return;
        }
        for port in 0..PORTS {
            self.commit(port);
        }
        for tracker in &mut self.trackers {
            assert!(
                !tracker.revoke("t", partition),
                "commit on revoke leaves nothing held"
            );
        }
        self.cursor.remove(&partition);
    }

    fn assign(&mut self, partition: i32) {
        if self.cursor.contains_key(&partition) {
            return;
        }
        for (tracker, table) in self.trackers.iter_mut().zip(&self.tables) {
            tracker.assign("t", partition, table.recorded.get(&partition).copied());
        }
        let from = read_from(&self.trackers, "t", partition).unwrap_or(0);
        self.cursor.insert(partition, from);
    }

    fn rival(&mut self, partition: i32, n: i64) {
        for table in &mut self.tables {
            let from = table.recorded.get(&partition).copied().unwrap_or(0);
            let next = (from + n).min(LOG);
            table.rows.extend((from..next).map(|o| (partition, o)));
            table.recorded.insert(partition, next);
        }
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Read { partition, n } => self.read(partition, n),
            Step::Commit { port } => {
                self.commit(port);
            }
            Step::Fail { port } => self.fail(port),
            Step::Revoke { partition } => self.revoke(partition),
            Step::Assign { partition } => self.assign(partition),
            Step::Rival { partition, n } => self.rival(partition, n),
        }
        for table in &self.tables {
            let mut rows = table.rows.clone();
            rows.sort_unstable();
            let before = rows.len();
            rows.dedup();
            assert_eq!(rows.len(), before, "a row was committed twice");
        }
    }

    /// Takes every partition and reads and commits to the end of the log.
    fn drain(&mut self) {
        for partition in 0..PARTITIONS {
            self.assign(partition);
        }
        for _ in 0..4 {
            for partition in 0..PARTITIONS {
                self.read(partition, LOG);
            }
            let landed = (0..PORTS).all(|port| self.commit(port));
            if landed && self.trackers.iter().all(|t| !t.has_pending()) {
                break;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_offset_is_skipped_or_committed_twice(steps in prop::collection::vec(step(), 0..60)) {
        let mut model = Model::new();
        for step in &steps {
            model.apply(step);
        }
        model.drain();
        let every: Vec<(i32, i64)> = (0..PARTITIONS)
            .flat_map(|p| (0..LOG).map(move |o| (p, o)))
            .collect();
        for (port, table) in model.tables.iter().enumerate() {
            let mut rows = table.rows.clone();
            rows.sort_unstable();
            prop_assert_eq!(&rows, &every, "port {}", port);
        }
    }
}
