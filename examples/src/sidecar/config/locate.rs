//! Finding where a field path is written in the configuration text, for
//! the checks that span fields and run after deserialization. The YAML
//! probing lives in [`mesh_core::resource::locate`], shared with the
//! policy resources.

use super::error::Location;

/// Where the value at `path` (such as `outbound.services[1].name`) is
/// written in `text`, or `None` when it is not there or cannot be told
/// for sure.
pub(crate) fn locate(text: &str, path: &str) -> Option<Location> {
    mesh_core::resource::locate(text, 1, path).map(|at| Location {
        line: at.line,
        column: at.column,
        index: at.index,
    })
}

/// Where the value at `path` is written, or, for one a merge key (`<<`)
/// brought in, where the mapping whose `<<` brought it is: see
/// [`mesh_core::resource::locate_nearest`].
pub(crate) fn locate_nearest(text: &str, path: &str) -> Option<Location> {
    mesh_core::resource::locate_nearest(text, 1, path).map(|at| Location {
        line: at.line,
        column: at.column,
        index: at.index,
    })
}

/// Where document `document` (counted from 1) of `text` starts: its
/// first value, or `None` when there is no such document.
pub(crate) fn document_start(text: &str, document: usize) -> Option<Location> {
    mesh_core::resource::locate(text, document, "").map(|at| Location {
        line: at.line,
        column: at.column,
        index: at.index,
    })
}
