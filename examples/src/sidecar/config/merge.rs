//! Merge keys (`<<`): applying them as Kubernetes' YAML reader does, and
//! finding where a mistake is in a file read through them, whose tree
//! has no lines, and whose merged values are not written at the path
//! they end up at.

use serde_yaml_ng::Value;

use super::error::Location;
use super::locate::locate;

/// Applies the merge keys (`<<`) of `tree`: each mapping takes the keys of
/// the mapping (or, in order, the mappings of the list) its `<<` names
/// that it does not write itself, and the `<<` is removed.
///
/// Why not serde_yaml_ng's `apply_merge`: it merges a mapping in as it
/// was written, so one that has a `<<` of its own (an anchor built on
/// another, `&b {<<: *a, per_try: 2s}`, merged into a third) brings that
/// `<<` along unapplied, and it is then refused as an unknown field;
/// Kubernetes' YAML reader applies it. Here what is merged in has its
/// own merges applied first, so the keys written nearest win. It also
/// keeps the keys in the order they are written, so that the first
/// mistake in the file is the one reported.
///
/// The tree was read by serde_yaml_ng, whose recursion limit bounds its
/// depth, and so this recursion's.
///
/// # Errors
///
/// When a `<<` names something else than a mapping or a list of them
/// ([`unmergeable`] finds where).
pub(super) fn apply(tree: &mut Value) -> Result<(), String> {
    match tree {
        Value::Mapping(mapping) => {
            if let Some(mut merged) = mapping.shift_remove("<<") {
                apply(&mut merged)?;
                let merged = match merged {
                    Value::Mapping(one) => vec![one],
                    Value::Sequence(items) => items
                        .into_iter()
                        .map(|item| match item {
                            Value::Mapping(one) => Ok(one),
                            _ => Err(NOT_A_MAPPING.to_owned()),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(NOT_A_MAPPING.to_owned()),
                };
                for one in merged {
                    for (key, value) in one {
                        mapping.entry(key).or_insert(value);
                    }
                }
            }
            for value in mapping.values_mut() {
                apply(value)?;
            }
        }
        Value::Sequence(items) => {
            for item in items {
                apply(item)?;
            }
        }
        Value::Tagged(tagged) => apply(&mut tagged.value)?,
        _ => {}
    }
    Ok(())
}

const NOT_A_MAPPING: &str = "it names something else than a mapping or a list of mappings";

/// Where the value at `path` is written, or else where the nearest
/// enclosing value that is written at its own path is: for a field merged
/// in, the mapping whose `<<` brought it. `None` only when not even the
/// document can be found.
pub(super) fn locate_nearest(text: &str, path: &str) -> Option<Location> {
    let mut path = path;
    loop {
        if let Some(at) = locate(text, path) {
            return Some(at);
        }
        if path.is_empty() {
            return None;
        }
        path = match path.rfind(['.', '[']) {
            Some(end) => &path[..end],
            None => "",
        };
    }
}

/// The path of the first mapping of `tree` whose merge key (`<<`) names
/// something that cannot be merged: neither a mapping nor a list of
/// mappings. The tree was read by serde_yaml_ng, whose recursion limit
/// bounds its depth.
pub(super) fn unmergeable(tree: &Value) -> Option<String> {
    let mut path = String::new();
    find(tree, &mut path).then_some(path)
}

/// The path of the merge key of the mapping at `mapping`.
pub(super) fn key_path(mapping: &str) -> String {
    if mapping.is_empty() {
        "<<".to_owned()
    } else {
        format!("{mapping}.<<")
    }
}

fn find(value: &Value, path: &mut String) -> bool {
    let start = path.len();
    match value {
        Value::Mapping(mapping) => {
            for (key, value) in mapping {
                if key.as_str() == Some("<<") && !mergeable(value) {
                    return true;
                }
                let Some(key) = key.as_str() else {
                    continue;
                };
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                if find(value, path) {
                    return true;
                }
                path.truncate(start);
            }
            false
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push_str(&format!("[{index}]"));
                if find(item, path) {
                    return true;
                }
                path.truncate(start);
            }
            false
        }
        Value::Tagged(tagged) => find(&tagged.value, path),
        _ => false,
    }
}

fn mergeable(value: &Value) -> bool {
    match value {
        Value::Mapping(_) => true,
        Value::Sequence(items) => items.iter().all(|item| matches!(item, Value::Mapping(_))),
        _ => false,
    }
}
