//! The objects of a document: the document itself, or the items of a
//! `kind: List` (or of a list kind of the API, such as `DeploymentList`),
//! each with what notes and errors name it by.

use mesh_core::resource::{DocumentContext, ResourceError, ResourceErrorKind};
use serde_yaml_ng::Value;

use super::{
    Note,
    note::printable,
    workload::Injection,
    yaml::{self, FieldPath, Problem},
};

/// One object of a document: the document itself, or an item of a
/// `kind: List`.
pub(super) struct Object<'v> {
    pub(super) value: &'v mut Value,
    pub(super) path: FieldPath,
    pub(super) item: Option<usize>,
    pub(super) api_version: String,
    pub(super) kind: String,
    pub(super) name: Option<String>,
    /// Its `metadata.namespace`, when that is a string, to name it in
    /// errors: for an item of a `kind: List`, its own, as kubectl applies
    /// each item to the namespace it names (not the List's).
    namespace: Option<String>,
}

/// Whether `document` is a list of objects: a `kind: List`, as `kubectl
/// get -o yaml` prints one, or a list kind of the API (`DeploymentList`,
/// `PodList`) with its `items`, as the API server answers a list request.
/// kubectl applies the items of either.
fn is_list(document: &Value) -> bool {
    match document.get("kind").and_then(Value::as_str) {
        Some("List") => true,
        Some(kind) => {
            kind.ends_with("List") && document.get("items").is_some_and(Value::is_sequence)
        }
        None => false,
    }
}

/// The objects of a document: the items of a list, and of a list among
/// them (kubectl flattens lists within lists), each named by the item of
/// the document's list it is in.
pub(super) fn objects(document: &mut Value) -> Result<Vec<Object<'_>>, Problem> {
    let root = FieldPath::default();
    if !is_list(document) {
        return Ok(vec![object(document, root, None)?]);
    }
    let mut objects = Vec::new();
    list_items(document, &root, None, &mut objects)?;
    Ok(objects)
}

/// Adds the objects of the list `list`, at `path`, to `objects`; `top`
/// is the item of the document's list it is, when it is not the document.
fn list_items<'v>(
    list: &'v mut Value,
    path: &FieldPath,
    top: Option<usize>,
    objects: &mut Vec<Object<'v>>,
) -> Result<(), Problem> {
    let mapping = yaml::as_mapping_mut(list, path)?;
    let items = match mapping.get_mut("items") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            return Err(Problem::new(
                ResourceErrorKind::InvalidType,
                path.key("items"),
                "expected a list",
            ));
        }
    };
    for (i, item) in items.iter_mut().enumerate() {
        let at = path.key("items").index(i);
        let top = top.unwrap_or(i);
        if is_list(item) {
            list_items(item, &at, Some(top), objects)?;
        } else {
            objects.push(object(item, at, Some(top))?);
        }
    }
    Ok(())
}

fn object(value: &mut Value, path: FieldPath, item: Option<usize>) -> Result<Object<'_>, Problem> {
    let mapping = yaml::as_mapping(value, &path)?;
    let field = |key: &str| {
        yaml::string(mapping, key, &path)?
            .map(str::to_owned)
            .ok_or_else(|| {
                Problem::new(
                    ResourceErrorKind::MissingField,
                    path.key(key),
                    format!("missing field `{key}`"),
                )
            })
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let metadata = yaml::mapping(mapping, "metadata", &path)?;
    let name = match metadata {
        Some(metadata) => yaml::string(metadata, "name", &path.key("metadata"))?.map(str::to_owned),
        None => None,
    };
    // Only to name the object: a namespace that is not a string is the
    // workload's error to report, at its field, and names nothing here.
    let namespace = metadata
        .and_then(|metadata| metadata.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Object {
        value,
        path,
        item,
        api_version,
        kind,
        name,
        namespace,
    })
}

impl Object<'_> {
    /// `error`, about this object of the document `context`, naming the
    /// object: for an item of a `kind: List`, its kind, namespace and name
    /// rather than the List's, which a `kubectl get -A -o yaml` holding
    /// hundreds of workloads would not tell apart (the field path starts
    /// at the item's index). A namespace that is not one (not a DNS-1123
    /// label) is not shown, as for a document's own.
    pub(super) fn name_in(
        &self,
        error: ResourceError,
        context: &DocumentContext<'_>,
    ) -> ResourceError {
        if self.item.is_none() {
            return error;
        }
        // The kind, name and namespace are the input's, written to a
        // terminal (a namespace that is not one is not shown, but the
        // error still holds it).
        let name = self.name.as_deref().map(printable);
        let namespace = self.namespace.as_deref().map(printable);
        error
            .in_document(
                context.index(),
                Some(&printable(&self.kind)),
                name.as_deref(),
            )
            .in_namespace(namespace.as_deref())
    }
}

/// The note of `object`, of the document `context`.
pub(super) fn note(
    context: &DocumentContext<'_>,
    object: Object<'_>,
    injection: Injection,
) -> Note {
    Note {
        origin: context.origin().to_owned(),
        document: context.index(),
        item: object.item,
        kind: object.kind,
        name: object.name,
        namespace: object.namespace,
        outcome: injection.outcome,
        warnings: injection.warnings,
        unproxied: injection.unproxied,
    }
}
