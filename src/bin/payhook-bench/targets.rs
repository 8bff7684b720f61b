//! What the suite measured, kept for the table that closes it: each performance target, the figure
//! this run measured for it, the bound, and whether it is met. An unmet target is reported, not an
//! error: the suite fails only when something went wrong (an error, a lost event).

use std::collections::HashMap;

/// One ingest run: a row of the ingest table.
#[derive(Clone, Copy)]
pub struct IngestRow {
    pub conns: usize,
    /// Acknowledged events/s.
    pub rate: f64,
    pub p99_ms: f64,
    /// CPU per acknowledged and applied event in µs: the server's (plus PostgreSQL's processes'
    /// on PostgreSQL) from the start of the load until everything acknowledged was applied. For
    /// the baseline, its CPU per request.
    pub applied_us: Option<f64>,
}

/// The highest steady end-to-end rate with bounded lag, of one store.
pub struct Highest {
    pub rate: Option<u64>,
    /// The load generator could not send the next step's rate: the server's limit is higher.
    pub generator_limited: bool,
}

/// The lesson's handler, measured or not.
pub enum Lesson {
    Measured { conns: usize, rate: f64 },
    Skipped,
}

#[derive(Default)]
pub struct Report {
    /// Rows by label: `baseline`, `sqlite`, `postgres`, `sqlite+H`, `postgres+H`.
    ingest: Vec<(String, Vec<IngestRow>)>,
    peak_mib: HashMap<String, f64>,
    /// End-to-end p99 (ms) by store and rate.
    e2e_p99: Vec<(String, u64, f64)>,
    highest: Vec<(String, Highest)>,
    lesson: Option<Lesson>,
}

impl Report {
    pub fn ingest_row(&mut self, label: &str, row: IngestRow) {
        match self.ingest.iter_mut().find(|(l, _)| l == label) {
            Some((_, rows)) => rows.push(row),
            None => self.ingest.push((label.to_string(), vec![row])),
        }
    }

    pub fn row(&self, label: &str, conns: usize) -> Option<IngestRow> {
        self.ingest
            .iter()
            .find(|(l, _)| l == label)?
            .1
            .iter()
            .find(|r| r.conns == conns)
            .copied()
    }

    /// The baseline's row of the last connection count it ran at.
    pub fn baseline_last(&self) -> Option<IngestRow> {
        self.ingest
            .iter()
            .find(|(l, _)| l == "baseline")?
            .1
            .last()
            .copied()
    }

    /// A server's peak resident memory; the largest of a store's servers is kept.
    pub fn peak(&mut self, label: &str, mib: f64) {
        let kept = self.peak_mib.entry(label.to_string()).or_insert(mib);
        *kept = kept.max(mib);
    }

    pub fn e2e_p99(&mut self, store: &str, rate: u64, p99_ms: f64) {
        self.e2e_p99.push((store.to_string(), rate, p99_ms));
    }

    pub fn highest(&mut self, store: &str, highest: Highest) {
        self.highest.push((store.to_string(), highest));
    }

    pub fn highest_of(&self, store: &str) -> Option<&Highest> {
        self.highest
            .iter()
            .find(|(s, _)| s == store)
            .map(|(_, h)| h)
    }

    pub fn lesson(&mut self, lesson: Lesson) {
        self.lesson = Some(lesson);
    }

    /// CPU per applied event of `label` against the baseline's per request, at `conns`.
    fn cpu_ratio(&self, label: &str, conns: usize) -> Option<(f64, f64, f64)> {
        let us = self.row(label, conns)?.applied_us?;
        let bare = self.row("baseline", conns)?.applied_us?;
        Some((us / bare, us, bare))
    }

    /// The closing table. Rows whose figure this run did not measure (a connection count or a
    /// rate left out, a backend not given) say so.
    pub fn print(&self) {
        println!(
            "{:<50} {:>28} {:>10}  verdict",
            "target", "measured", "bound"
        );
        let line = |target: &str, measured: Option<(String, bool)>, bound: &str| {
            let (figure, verdict) = match measured {
                Some((figure, met)) => (figure, if met { "met" } else { "NOT MET" }),
                None => ("not measured".to_string(), "-"),
            };
            println!("{target:<50} {figure:>28} {bound:>10}  {verdict}");
        };
        let stores: Vec<&str> = ["sqlite", "postgres", "sqlite+H", "postgres+H"]
            .into_iter()
            .filter(|s| self.ingest.iter().any(|(l, _)| l == s))
            .collect();
        for store in &stores {
            let sqlite = store.starts_with("sqlite");
            let (max, what) = if sqlite {
                (3.0, "CPU/event")
            } else {
                (5.0, "CPU/event (srv+db)")
            };
            for conns in [32, 128] {
                line(
                    &format!("{what} vs bare, {store}, {conns} conns"),
                    self.cpu_ratio(store, conns).map(|(x, us, bare)| {
                        (format!("{x:.2}x ({us:.0} / {bare:.0} µs)"), x <= max)
                    }),
                    &format!("<= {max:.0}x"),
                );
            }
            if sqlite {
                line(
                    &format!("ack p99, {store}, 8 conns"),
                    self.row(store, 8)
                        .map(|r| (format!("{:.2} ms", r.p99_ms), r.p99_ms <= 2.0)),
                    "<= 2 ms",
                );
                let scaling = self
                    .row(store, 8)
                    .zip(self.row(store, 1))
                    .map(|(eight, one)| eight.rate / one.rate);
                line(
                    &format!("throughput 8 conns / 1 conn, {store}"),
                    scaling.map(|x| (format!("{x:.2}x"), x >= 5.0)),
                    ">= 5x",
                );
            }
            line(
                &format!("peak resident memory, {store}"),
                self.peak_mib
                    .get(*store)
                    .map(|mib| (format!("{mib:.1} MiB"), *mib <= 64.0)),
                "<= 64 MiB",
            );
        }
        for store in ["sqlite", "postgres"] {
            let Some(h) = self.highest_of(store) else {
                continue;
            };
            let floor = if h.generator_limited { ">= " } else { "" };
            let figure = h
                .rate
                .map_or("none".to_string(), |r| format!("{floor}{r}/s"));
            if store == "sqlite" {
                line(
                    "highest bounded e2e rate, sqlite",
                    Some((figure, h.rate.is_some_and(|r| r >= 10_000))),
                    ">= 10000/s",
                );
            } else {
                // Reported, without a bound.
                println!(
                    "{:<50} {figure:>28} {:>10}  -",
                    format!("highest bounded e2e rate, {store}"),
                    "reported"
                );
            }
        }
        for store in ["sqlite", "postgres"] {
            if !stores.contains(&store) {
                continue;
            }
            let p99 = self
                .e2e_p99
                .iter()
                .find(|(s, rate, _)| s == store && *rate == 1000)
                .map(|(_, _, p)| *p);
            line(
                &format!("e2e p99 at 1000/s, {store}"),
                p99.map(|p| (format!("{p:.2} ms"), p <= 50.0)),
                "<= 50 ms",
            );
        }
        match &self.lesson {
            Some(Lesson::Measured { conns, rate }) => {
                let ratio = self
                    .highest_of("sqlite")
                    .and_then(|h| Some((h.rate? as f64 / rate, h.generator_limited)));
                line(
                    &format!("payhook e2e / lesson's ({conns} conns)"),
                    ratio.map(|(x, floor)| {
                        let floor = if floor { ">= " } else { "" };
                        (format!("{floor}{x:.1}x ({rate:.0}/s)"), x >= 10.0)
                    }),
                    ">= 10x",
                );
            }
            Some(Lesson::Skipped) => println!(
                "{:<50} {:>28} {:>10}  -",
                "payhook e2e / lesson's", "skipped (see above)", ">= 10x"
            ),
            None => {}
        }
        println!(
            "CPU/event: from the start of the load until every acknowledged event was applied, per acknowledged event; bare: the baseline's CPU per request at the same connections. +H: with the history stored"
        );
    }
}
