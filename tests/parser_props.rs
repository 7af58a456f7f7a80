//! Property tests for the input parser: line numbers are exact whatever the
//! layout, records are the `csv` crate's, and nothing but a well-formed ID is
//! ever accepted.

use proptest::prelude::*;

use crate::support::Workdir;

fn hex_id() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{32}"
}

fn uuid_id() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

/// A row as it may be laid out: spacing, quoting, then blank lines after it.
fn layout() -> impl Strategy<Value = (String, String, bool, usize, bool)> {
    (" {0,2}", " {0,2}", any::<bool>(), 0usize..3, any::<bool>())
}

/// A quoted note's text: commas, doubled quotes, every kind of line break, and
/// pairs that must never be read as rows.
fn note() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("x".to_string()),
        Just(" ".to_string()),
        Just(",".to_string()),
        Just("\"\"".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\r".to_string()),
        (hex_id(), hex_id()).prop_map(|(zone, cert)| format!("{zone},{cert}")),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

/// A revoked row as (line, zone, certificate).
type Revoked = (u64, String, String);

/// Both passes over the file at `path`, which must hold no invalid row: each
/// pair revoked once, where it first appears.
fn revoked_rows(path: &std::path::Path) -> Vec<Revoked> {
    let plan = cfrevoke::input::plan::Plan::build(path).unwrap();
    assert_eq!(plan.invalid, 0, "{}", plan.problem_report());
    plan.jobs()
        .unwrap()
        .map(|j| match j.unwrap() {
            cfrevoke::input::plan::Job::Revoke(row) => (row.line, row.zone.to_string(), row.cert.to_string()),
            cfrevoke::input::plan::Job::Invalid(bad) => panic!("{bad:?}"),
        })
        .collect()
}

/// The first row of each pair, as the plan keeps it.
fn first_of_each_pair(rows: impl IntoIterator<Item = Revoked>) -> Vec<Revoked> {
    let mut seen = std::collections::HashSet::new();
    rows.into_iter().filter(|(_, zone, cert)| seen.insert((zone.clone(), cert.clone()))).collect()
}

/// Physical lines `text` ends, as an editor counts them: LF, CRLF or lone CR.
fn line_ends(text: &str) -> u64 {
    text.replace("\r\n", "\n").matches(['\r', '\n']).count() as u64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Pass one and pass two read the records the `csv` crate reads, each on
    /// the line where it starts, with notes that span lines and hold pairs.
    #[test]
    fn records_are_read_as_the_csv_crate_reads_them(
        rows in prop::collection::vec((hex_id(), prop_oneof![hex_id(), uuid_id()], any::<bool>(), note(), 0usize..3), 1..20),
        bom in any::<bool>(),
        eol in prop::sample::select(vec!["\n", "\r\n", "\r"]),
    ) {
        let mut text = String::from(if bom { "\u{feff}" } else { "" });
        text.push_str("note,zone_id,certificate_id");
        text.push_str(eol);
        let mut lines = vec![];
        for (zone, cert, quoted, note, blanks) in &rows {
            lines.push(line_ends(&text) + 1);
            let cert = if *quoted { format!("\"{cert}\"") } else { cert.clone() };
            text.push_str(&format!("{note},{zone},{cert}{eol}"));
            for _ in 0..*blanks {
                text.push_str(eol);
            }
        }
        let csv_pairs: Vec<(String, String)> = csv::ReaderBuilder::new()
            .from_reader(text.as_bytes())
            .records()
            .map(|r| { let r = r.unwrap(); (r[1].to_lowercase(), r[2].to_lowercase()) })
            .collect();
        prop_assert_eq!(csv_pairs.len(), rows.len());
        let work = Workdir::new();
        let expected = first_of_each_pair(lines.into_iter().zip(csv_pairs).map(|(line, (zone, cert))| (line, zone, cert)));
        prop_assert_eq!(revoked_rows(&work.write("p.csv", &text)), expected);
    }

    #[test]
    fn valid_rows_parse_with_exact_lines(
        rows in prop::collection::vec((hex_id(), prop_oneof![hex_id(), uuid_id()], layout()), 1..30),
        bom in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        if bom { text.push('\u{feff}'); }
        text.push_str("Zone ID , certificate_id");
        text.push_str(eol);
        let mut line = 1u64;
        let mut expected = vec![];
        for (zone, cert, (pad_a, pad_b, quote, blanks, _)) in &rows {
            line += 1;
            let cert_field = if *quote { format!("\"{cert}\"") } else { cert.clone() };
            text.push_str(&format!("{pad_a}{zone}{pad_b},{pad_b}{cert_field}{pad_a}{eol}"));
            expected.push((line, zone.to_lowercase(), cert.to_lowercase()));
            for _ in 0..*blanks {
                text.push_str(if crlf { "  \r\n" } else { "\n" });
                line += 1;
            }
        }
        let work = Workdir::new();
        prop_assert_eq!(revoked_rows(&work.write("p.csv", &text)), first_of_each_pair(expected));
    }

    #[test]
    fn only_well_formed_ids_are_accepted(raw in "\\PC{0,40}") {
        let zone_ok = raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit());
        prop_assert_eq!(raw.parse::<cfrevoke::input::ids::ZoneId>().is_ok(), zone_ok);
        if let Ok(cert) = raw.parse::<cfrevoke::input::ids::CertId>() {
            let shown = cert.to_string();
            prop_assert!(shown.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
            prop_assert_eq!(shown, raw.to_lowercase());
        }
    }
}
