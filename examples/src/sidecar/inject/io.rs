//! `inject` on readers, writers and files: what the `sidecar inject`
//! command runs, with the manifests on standard output and the notes and
//! warnings on standard error.

use std::{
    fs::File,
    io::{self, Read, Write},
    path::Path,
};

use super::{InjectConfig, InjectError, MAX_INPUT, Note, inject};

/// Reads manifests from `input`, writes them injected to `output` and a
/// note per object to `notes`, each on its own lines (see [`Note`]).
/// Nothing is written to `output` unless every document could be
/// injected; warnings do not keep it from being written.
///
/// # Errors
///
/// [`InjectError::Read`] when `input` cannot be read or is not UTF-8,
/// [`InjectError::TooLarge`] when it is longer than [`MAX_INPUT`] (no more
/// than that is read),
/// [`InjectError::Write`] when `output` or `notes` cannot be written, and
/// otherwise as [`inject`].
pub fn inject_io(
    origin: &str,
    input: &mut dyn Read,
    output: &mut dyn Write,
    notes: &mut dyn Write,
    config: &InjectConfig,
) -> Result<Vec<Note>, InjectError> {
    let read_error = |source| InjectError::Read {
        origin: origin.to_owned(),
        source,
    };
    // One byte more than the limit tells an input at the limit from one
    // over it, without reading an endless one to its end. The length is
    // judged on the bytes read, before anything (a byte order mark, a
    // character cut in two at the limit) could make a cut input pass
    // for a whole one.
    let limit = u64::try_from(MAX_INPUT).map_or(u64::MAX, |max| max.saturating_add(1));
    let mut bytes = Vec::new();
    input
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > MAX_INPUT {
        return Err(InjectError::TooLarge {
            origin: origin.to_owned(),
        });
    }
    let text = String::from_utf8(bytes)
        .map_err(|error| read_error(io::Error::new(io::ErrorKind::InvalidData, error)))?;
    let injected = inject(origin, &text, config)?;
    output
        .write_all(injected.yaml.as_bytes())
        .and_then(|()| output.flush())
        .map_err(InjectError::Write)?;
    for note in &injected.notes {
        writeln!(notes, "{note}").map_err(InjectError::Write)?;
    }
    Ok(injected.notes)
}

/// [`inject_io`] on the file at `path`, or on standard input when `path`
/// is `-`; notes name it `stdin` then.
///
/// # Errors
///
/// As [`inject_io`]; [`InjectError::Read`] when the file cannot be opened.
pub fn inject_file(
    path: &Path,
    output: &mut dyn Write,
    notes: &mut dyn Write,
    config: &InjectConfig,
) -> Result<Vec<Note>, InjectError> {
    if path == Path::new("-") {
        return inject_io("stdin", &mut std::io::stdin().lock(), output, notes, config);
    }
    let origin = path.display().to_string();
    match File::open(path) {
        Ok(mut file) => inject_io(&origin, &mut file, output, notes, config),
        Err(source) => Err(InjectError::Read { origin, source }),
    }
}
