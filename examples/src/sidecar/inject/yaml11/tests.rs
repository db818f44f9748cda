use super::*;

fn resolved(text: &str) -> Option<Value> {
    plain_scalar(text)
}

#[test]
fn yaml11_booleans_are_booleans() {
    assert_eq!(resolved("yes"), Some(Value::Bool(true)));
    assert_eq!(resolved("On"), Some(Value::Bool(true)));
    assert_eq!(resolved("N"), Some(Value::Bool(false)));
    assert_eq!(resolved("OFF"), Some(Value::Bool(false)));
    assert_eq!(resolved("yesterday"), None);
}

#[test]
fn numbers_are_read_as_go_reads_them() {
    assert_eq!(resolved("0644"), Some(Value::from(420)));
    assert_eq!(resolved("-0644"), Some(Value::from(-420)));
    assert_eq!(resolved("1_000"), Some(Value::from(1000)));
    assert_eq!(resolved("0x_1F"), Some(Value::from(31)));
    assert_eq!(resolved("0B11"), Some(Value::from(3)));
    assert_eq!(resolved("0O17"), Some(Value::from(15)));
    assert_eq!(
        resolved("18446744073709551615"),
        Some(Value::from(u64::MAX))
    );
    // Not octal, so a float to Go, as is a number past u64.
    assert_eq!(resolved("09"), Some(Value::from(9.0)));
    assert_eq!(resolved("1_0.5"), Some(Value::from(10.5)));
    assert_eq!(
        resolved("18446744073709551616"),
        Some(Value::from(18_446_744_073_709_551_616.0))
    );
}

#[test]
fn other_scalars_stay_strings() {
    for text in [
        "_1",
        "1.2.3_4",
        "0x",
        "0b2",
        "1e",
        "0.5e",
        "2001-12-14",
        "1:20",
        "v1",
        "-",
        "+",
        "",
        "1e+",
        ".",
        // Past f64: Go's ParseFloat fails with ErrRange, and the scalar
        // stays a string.
        "1e400",
        "-1_0e999",
    ] {
        assert_eq!(resolved(text), None, "{text:?}");
    }
}

fn walked(text: &str) -> Value {
    let mut value: Value = serde_yaml_ng::from_str(text).unwrap();
    PlainScalars::new(text).resolve(1, &mut value);
    value
}

#[test]
fn plain_scalars_are_resolved_and_quoted_ones_are_not() {
    let text = "a: 0644\nb: '0644'\nc: \"0644\"\nd: [0644, '1_0', yes]\ne: {f: 0o17, g: on}\nh: |\n  0644\n";
    let expected: Value = serde_yaml_ng::from_str(
        "a: 420\nb: '0644'\nc: '0644'\nd: [420, '1_0', true]\ne: {f: 15, g: true}\nh: \"0644\\n\"\n",
    )
    .unwrap();
    assert_eq!(walked(text), expected);
}

#[test]
fn each_document_is_resolved_from_its_own_text() {
    let text = "a: '0644'\n---\n---\na: 0644\n";
    let mut values: Vec<Value> = serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let mut plain = PlainScalars::new(text);
    plain.resolve(1, &mut values[0]);
    plain.resolve(3, &mut values[2]);
    assert_eq!(values[0]["a"], Value::from("0644"));
    assert_eq!(values[2]["a"], Value::from(420));
}

#[test]
fn tagged_scalars_are_not_resolved() {
    let text = "a: !!str 0644\nb: &x !!str yes\nc: !!str &y on\nd: [!!str 1,!!str 2, 3]\n\
                e: !!str # why\n  0x10\nf: &z 0644\ng: {'a #b': !!str 1}\nh: # see !!str\n  0644\n\
                i: !<tag:yaml.org,2002:str> 1_000\nj: \"x!\"\nk: 0644 # !!str\n";
    let expected: Value = serde_yaml_ng::from_str(
        "a: '0644'\nb: 'yes'\nc: 'on'\nd: ['1', '2', 3]\ne: '0x10'\nf: 420\ng: {'a #b': '1'}\n\
         h: 420\ni: '1_000'\nj: 'x!'\nk: 420\n",
    )
    .unwrap();
    assert_eq!(walked(text), expected);
}
