//! Property tests for the input parser: line numbers are exact whatever the
//! layout, and nothing but a well-formed ID is ever accepted.

use std::io::Write;

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

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
        let path = work.path("p.csv");
        std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
        let plan = cfrevoke::plan::Plan::build(&path).unwrap();
        prop_assert_eq!(plan.invalid, 0);
        let got: Vec<(u64, String, String)> = plan
            .jobs()
            .unwrap()
            .map(|j| match j.unwrap() {
                cfrevoke::plan::Job::Revoke(row) => (row.line, row.zone.to_string(), row.cert.to_string()),
                cfrevoke::plan::Job::Invalid(p) => panic!("{p:?}"),
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        let expected: Vec<_> = expected.into_iter().filter(|(_, z, c)| seen.insert((z.clone(), c.clone()))).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn only_well_formed_ids_are_accepted(raw in "\\PC{0,40}") {
        let zone_ok = raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit());
        prop_assert_eq!(raw.parse::<cfrevoke::ids::ZoneId>().is_ok(), zone_ok);
        if let Ok(cert) = raw.parse::<cfrevoke::ids::CertId>() {
            let shown = cert.to_string();
            prop_assert!(shown.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
            prop_assert_eq!(shown, raw.to_lowercase());
        }
    }
}
