//! `drover::wire::scan_object`, the one-pass validator of pass-through
//! stream events, against serde_json on any bytes: whatever the scan
//! accepts, serde_json and `str::from_utf8` accept, with the same `done`
//! and no `error`; and whatever serde_json accepts as an object not nested
//! deeper than the scan's limit, the scan accepts too.

use drover::wire::scan_object;
use serde_json::Value;

pub fn check(data: &[u8]) {
    let scanned = scan_object(data);
    // What the stream translator's full parse accepts: any JSON whose
    // ignored parts are only checked for syntax (so numbers of any size).
    let valid = serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
        && std::str::from_utf8(data).is_ok();
    let object = valid && data.trim_ascii_start().first() == Some(&b'{');
    match &scanned {
        Some(_) if !object => panic!("the scan accepts what serde_json or UTF-8 rejects"),
        Some(top) => {
            if let Some(r) = &top.model {
                let model: Value = serde_json::from_slice(&data[r.clone()])
                    .expect("the model range is one JSON value");
                assert!(model.is_string(), "the model range is a string");
            }
            // A Value holds numbers as f64, so a huge one fails it (while
            // the scan and the translator skip it): compare what parses.
            if let (false, Ok(Value::Object(map))) =
                (top.unusual, serde_json::from_slice::<Value>(data))
            {
                // No key is repeated among these, so the map's (last) value
                // is the only one.
                match map.get("done") {
                    None => assert_eq!(top.done, None),
                    Some(Value::Bool(b)) => assert_eq!(top.done, Some(*b)),
                    Some(other) => panic!("done {other} not flagged unusual"),
                }
                assert!(
                    matches!(map.get("error"), None | Some(Value::Null)),
                    "an error not flagged unusual"
                );
            }
        }
        None if object => {
            // Nesting can only be deeper than 128 with more than 128
            // opening brackets in the text.
            let opens = data.iter().filter(|&&c| c == b'[' || c == b'{').count();
            assert!(opens > 128, "the scan rejects a valid object");
        }
        None => {}
    }
}
