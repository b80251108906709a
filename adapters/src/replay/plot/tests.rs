use quick_xml::Reader;
use quick_xml::events::Event;

use super::*;

/// Parses `svg` as XML: every element closed in order, one root `<svg>`,
/// attributes well formed, only the five predefined entities. Returns the
/// element names in document order.
fn elements(svg: &str) -> Vec<String> {
    let mut reader = Reader::from_str(svg);
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut roots = 0;
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("not XML at {}: {e}\n{svg}", reader.buffer_position()));
        match event {
            Event::Start(e) | Event::Empty(e) if stack.is_empty() && roots > 0 => {
                panic!("second root {:?}", e.name())
            }
            Event::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                for a in e.attributes() {
                    a.unwrap();
                }
                if stack.is_empty() {
                    roots += 1;
                }
                seen.push(name.clone());
                stack.push(name);
            }
            Event::Empty(e) => {
                for a in e.attributes() {
                    a.unwrap();
                }
                seen.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
            }
            Event::End(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                assert_eq!(stack.pop().as_deref(), Some(name.as_str()), "unbalanced");
            }
            Event::GeneralRef(r) => {
                let name = String::from_utf8(r.to_vec()).unwrap();
                assert!(
                    ["amp", "lt", "gt", "quot", "apos"].contains(&name.as_str()),
                    "entity &{name};"
                );
            }
            Event::Text(t) => {
                assert!(!t.trim_ascii().contains(&b'<'));
            }
            Event::Eof => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert_eq!(roots, 1);
    assert_eq!(seen.first().map(String::as_str), Some("svg"));
    seen
}

/// Checks what every chart must be, and returns its elements.
fn check(svg: &str) -> Vec<String> {
    for bad in ["NaN", "nan", "inf", "-0.0"] {
        assert!(!svg.contains(bad), "{bad} in\n{svg}");
    }
    elements(svg)
}

fn count(elements: &[String], name: &str) -> usize {
    elements.iter().filter(|e| *e == name).count()
}

fn ttft() -> Vec<Series> {
    let p2c: Vec<f64> = (1..=2_000)
        .map(|i| 40.0 + f64::from(i % 997) * 3.1)
        .collect();
    let rr: Vec<f64> = (1..=50).map(|i| 90.0 * f64::from(i)).collect();
    vec![
        ("p2c".to_owned(), p2c),
        ("round_robin".to_owned(), rr),
        ("random".to_owned(), vec![]),
    ]
}

fn load() -> TimeSeries {
    TimeSeries {
        start_s: 0.0,
        bucket_s: 10.0,
        series: vec![
            (
                "gpu-1".to_owned(),
                (0..120).map(|i| f64::from(i % 9)).collect(),
            ),
            (
                "cpu-1".to_owned(),
                (0..120).map(|i| f64::from(i % 3) / 2.0).collect(),
            ),
            (
                "flaky-1".to_owned(),
                vec![1.0, f64::NAN, 2.0, 3.0, f64::INFINITY, 4.0],
            ),
        ],
    }
}

fn failures() -> TimeSeries {
    TimeSeries {
        start_s: 0.0,
        bucket_s: 30.0,
        series: vec![
            ("node_failed".to_owned(), vec![0.0, 2.0, 5.0, 1.0]),
            (
                "all_nodes_saturated".to_owned(),
                vec![1.0, 0.0, 3.0, -2.0, 7.0],
            ),
        ],
    }
}

#[test]
fn charts_are_well_formed_and_complete() {
    let svg = cdf("TTFT by policy", "time to first token (ms)", &ttft());
    let el = check(&svg);
    // One line per non-empty series; the empty one is in the legend only.
    assert_eq!(count(&el, "polyline"), 2);
    assert!(svg.contains(">p2c</text>") && svg.contains(">random (no data)</text>"));
    assert!(svg.contains(">p99</text>") && svg.contains(">1k</text>"));
    // Long series are thinned to at most CDF_POINTS + 2 points.
    let longest = svg
        .lines()
        .filter(|l| l.starts_with("<polyline"))
        .map(|l| l.matches(',').count())
        .max()
        .unwrap();
    assert!(longest <= CDF_POINTS + 2, "{longest}");

    let svg = lines("Load per node", "calls in flight", &load());
    let el = check(&svg);
    // gpu-1 and cpu-1 are one line each; flaky-1 breaks into three runs:
    // [1], [2, 3] and [4], two of them single dots.
    assert_eq!(count(&el, "polyline"), 3);
    assert_eq!(count(&el, "circle"), 2);
    assert!(svg.contains(">time (s)</text>") && svg.contains(">1200</text>"));

    let svg = stacked_bars("Failures over time", "failed calls", &failures());
    let el = check(&svg);
    // Background + 6 positive values + 2 legend swatches.
    assert_eq!(count(&el, "rect"), 1 + 6 + 2);
}

#[test]
fn same_input_same_bytes() {
    assert_eq!(cdf("t", "ms", &ttft()), cdf("t", "ms", &ttft()));
    assert_eq!(lines("t", "n", &load()), lines("t", "n", &load()));
    assert_eq!(
        stacked_bars("t", "n", &failures()),
        stacked_bars("t", "n", &failures())
    );
}

#[test]
fn empty_and_degenerate_inputs() {
    let nothing: Vec<Series> = vec![];
    let empty_series = vec![("p2c".to_owned(), vec![])];
    let junk = vec![("p2c".to_owned(), vec![f64::NAN, f64::INFINITY])];
    for series in [&nothing, &empty_series, &junk] {
        let svg = cdf("empty", "ms", series);
        let el = check(&svg);
        assert_eq!(count(&el, "polyline"), 0);
        assert!(svg.contains(">no data</text>"));
    }
    // A single sample: a visible vertical step. Zero and negative samples
    // sit at the low end of the axis.
    let one = vec![("p2c".to_owned(), vec![120.0])];
    let svg = cdf("one", "ms", &one);
    assert_eq!(count(&check(&svg), "polyline"), 1);
    assert!(!svg.contains("no data"));
    let low = vec![("p2c".to_owned(), vec![0.0, -3.0, 5.0])];
    assert_eq!(count(&check(&cdf("low", "ms", &low)), "polyline"), 1);

    for data in [
        TimeSeries {
            start_s: 0.0,
            bucket_s: 10.0,
            series: vec![],
        },
        TimeSeries {
            start_s: f64::NAN,
            bucket_s: 0.0,
            series: vec![("a".to_owned(), vec![])],
        },
        TimeSeries {
            start_s: 0.0,
            bucket_s: f64::INFINITY,
            series: vec![("a".to_owned(), vec![f64::NAN])],
        },
    ] {
        for svg in [lines("e", "n", &data), stacked_bars("e", "n", &data)] {
            let el = check(&svg);
            assert_eq!(count(&el, "polyline"), 0);
            assert!(svg.contains(">no data</text>"), "{svg}");
        }
    }
    let point = TimeSeries {
        start_s: 5.0,
        bucket_s: 1.0,
        series: vec![("a".to_owned(), vec![0.0])],
    };
    let svg = lines("one", "n", &point);
    assert_eq!(count(&check(&svg), "circle"), 1);
    let svg = stacked_bars("one", "n", &point);
    // A zero count draws no bar.
    assert_eq!(count(&check(&svg), "rect"), 1 + 1);
}

#[test]
fn text_is_escaped_and_long_legends_are_cut() {
    let nasty = "a<b & \"c\" 'd'>\u{7}";
    let series = vec![(nasty.to_owned(), vec![1.0, 2.0])];
    let svg = cdf(nasty, nasty, &series);
    check(&svg);
    assert!(svg.contains("a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt; "));
    // 64 nodes do not fit one column: the last row sums up the rest.
    let many = TimeSeries {
        start_s: 0.0,
        bucket_s: 1.0,
        series: (0..64)
            .map(|i| (format!("node-with-a-long-name-{i}"), vec![f64::from(i)]))
            .collect(),
    };
    let svg = lines("many", "n", &many);
    check(&svg);
    assert!(svg.contains("more</text>"), "{svg}");
    assert!(svg.contains("node-with-a-long-name…"));
}
