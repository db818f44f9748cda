//! Merge keys (`<<`): applying them as Kubernetes' YAML reader does, and
//! finding where a mistake is in a document read through them, whose tree
//! has no lines, and whose merged values are not written at the path they
//! end up at.
//!
//! Every reader of YAML in the mesh applies merge keys here: the policy
//! and route resources, the sidecar's configuration and `sidecar inject`'s
//! manifests, so that one file reads the same way in all of them.

use std::{error::Error as StdError, fmt};

use serde_yaml_ng::Value;

use super::{error::Location, locate::locate};

/// A merge key (`<<`) that names something else than a mapping or a list
/// of mappings, which cannot be merged into the mapping it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmergeableKey {
    mapping: String,
}

impl UnmergeableKey {
    /// The field path of the mapping whose merge key it is, such as
    /// `spec.rules[1].timeouts`; empty for the document itself.
    pub fn mapping(&self) -> &str {
        &self.mapping
    }

    /// The field path of the merge key itself, such as
    /// `spec.rules[1].timeouts.<<`: where it is written, for
    /// [`locate`](super::locate).
    pub fn key_path(&self) -> String {
        if self.mapping.is_empty() {
            "<<".to_owned()
        } else {
            format!("{}.<<", self.mapping)
        }
    }
}

impl fmt::Display for UnmergeableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a merge key (`<<`) names a mapping, or a list of mappings, to merge into \
             the mapping it is in: it cannot be applied to anything else",
        )
    }
}

impl StdError for UnmergeableKey {}

/// Applies the merge keys (`<<`) of `tree`: each mapping takes the keys of
/// the mapping (or, in order, the mappings of the list) its `<<` names
/// that it does not write itself, and the `<<` is removed.
///
/// Why not serde_yaml_ng's `apply_merge`: it merges a mapping in as it
/// was written, so one that has a `<<` of its own (an anchor built on
/// another, `&b {<<: *a, per_try: 2s}`, merged into a third) brings that
/// `<<` along unapplied, to be read as one more field; Kubernetes' YAML
/// reader applies it. Here what is merged in has its own merges applied
/// first, so the keys written nearest win. It also keeps the keys in the
/// order they are written (`apply_merge` moves the last key to where the
/// `<<` was), so that the first mistake in the document is the one
/// reported, and a walk along the text meets the keys in its order.
///
/// The tree was read by serde_yaml_ng, whose recursion limit bounds its
/// depth, and so this recursion's; what aliases make of it is bounded by
/// [`check_yaml_aliases`](super::check_yaml_aliases), which every reader
/// calls before a tree is read.
///
/// # Errors
///
/// The first mapping, in the order the document writes them, whose `<<`
/// names something that cannot be merged. The tree is then left as it
/// was.
pub fn apply_merge_keys(tree: &mut Value) -> Result<(), UnmergeableKey> {
    // Everything merged in is a copy of a value written somewhere in the
    // tree, checked here: once this passes, every `<<` can be applied.
    let mut mapping = String::new();
    if find_unmergeable(tree, &mut mapping) {
        return Err(UnmergeableKey { mapping });
    }
    apply(tree);
    Ok(())
}

/// Where the value at `path` is written in document `document` (from 1)
/// of `text`, or else where the nearest enclosing value that is written at
/// its own path is: for a field a merge key brought in, the mapping whose
/// `<<` brought it. `None` only when not even the document can be found.
pub fn locate_nearest(text: &str, document: usize, path: &str) -> Option<Location> {
    let mut path = path;
    loop {
        if let Some(at) = locate(text, document, path) {
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

/// Applies the merges of a tree whose every `<<` names a mapping or a list
/// of mappings.
fn apply(tree: &mut Value) {
    match tree {
        Value::Mapping(mapping) => {
            if let Some(mut merged) = mapping.shift_remove("<<") {
                apply(&mut merged);
                let merged = match merged {
                    Value::Mapping(one) => vec![one],
                    Value::Sequence(items) => items
                        .into_iter()
                        .filter_map(|item| match item {
                            Value::Mapping(one) => Some(one),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                // The first mapping of a list wins over the later ones, as
                // YAML's merge key type says.
                for one in merged {
                    for (key, value) in one {
                        mapping.entry(key).or_insert(value);
                    }
                }
            }
            for value in mapping.values_mut() {
                apply(value);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                apply(item);
            }
        }
        Value::Tagged(tagged) => apply(&mut tagged.value),
        _ => {}
    }
}

/// Whether `value` has a mapping whose `<<` cannot be merged; `path` is
/// then that mapping's path.
fn find_unmergeable(value: &Value, path: &mut String) -> bool {
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
                if find_unmergeable(value, path) {
                    return true;
                }
                path.truncate(start);
            }
            false
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push_str(&format!("[{index}]"));
                if find_unmergeable(item, path) {
                    return true;
                }
                path.truncate(start);
            }
            false
        }
        Value::Tagged(tagged) => find_unmergeable(&tagged.value, path),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn a_chained_merge_is_applied_whole_and_the_nearest_key_wins() {
        let mut value =
            tree("a: &a {x: 1, y: 1, z: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3, w: 4}\n");
        apply_merge_keys(&mut value).unwrap();
        assert_eq!(value["c"], tree("{z: 3, w: 4, y: 2, x: 1}"), "{value:?}");
        let keys: Vec<_> = value["c"].as_mapping().unwrap().keys().cloned().collect();
        assert_eq!(keys, [tree("z"), tree("w"), tree("y"), tree("x")]);
    }

    #[test]
    fn the_first_mapping_of_a_merged_list_wins() {
        let mut value = tree("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc: {<<: [*a, *b]}\n");
        apply_merge_keys(&mut value).unwrap();
        assert_eq!(value["c"], tree("{x: 1, y: 2}"));
    }

    #[test]
    fn an_unmergeable_key_names_its_mapping_and_leaves_the_tree() {
        let text = "a: &a {x: 1}\nb:\n  - {<<: *a}\n  - {<<: [*a, 3]}\n";
        let mut value = tree(text);
        let error = apply_merge_keys(&mut value).unwrap_err();
        assert_eq!(error.mapping(), "b[1]");
        assert_eq!(error.key_path(), "b[1].<<");
        assert_eq!(value, tree(text));
        assert_eq!(locate_nearest(text, 1, &error.key_path()).unwrap().line, 4);
    }
}
