//! The path a request names once its spelling is undone.
//!
//! Routes match the path as the client wrote it, as Linkerd's do. But the
//! application behind the mesh usually resolves `..`, merges `//` and
//! decodes `%61` before it routes (and a Java servlet container drops
//! each segment's `;` parameters; the WHATWG URL parser, Node's
//! `url.parse` and IIS read `\` as `/`), so `/public/../admin`, `//admin`,
//! `/%61dmin`, `/public/..;/admin` and `/public/..\admin` reach its `/admin` handler while authorization matched them
//! against some other route: a route that only admins may use would be
//! open to anyone through another route's door. So a request whose path
//! is not in normal form must be allowed under both spellings, the
//! written one and the normal one (see [`Policy::evaluate_head`]).
//!
//! mesh-core's `NormalizePathLayer` rewrites the path itself, so that the
//! application serves the path that was matched; behind it, only an
//! escaped `/`, which it keeps, and a `\`, which it leaves alone, still
//! need this check.
//!
//! [`Policy::evaluate_head`]: super::Policy::evaluate_head

use http::{Uri, uri::PathAndQuery};

/// The normal form of `path` (RFC 3986, section 6.2.2, plus merged
/// slashes, `%2F`, `\` and `%5C` read as `/` and path parameters
/// dropped), or `None` when `path` is already in it or is not an absolute
/// path (`*`).
///
/// Percent-escapes of unreserved characters and of `/` are decoded, and
/// `\`, as written or escaped, is a `/`, as the WHATWG URL parser reads
/// it in an `http` URL; other escapes are kept, with upper-case hex
/// digits. Each segment loses its
/// parameters, from its first `;` (a literal `;`, not `%3B`), as servlet
/// containers read `/a;x=1` as `/a` and `/..;/` as `/../`. Then empty and
/// `.` segments are dropped and each `..` drops the segment before it. A path
/// that ended in `/` (or in a dot segment) keeps its trailing `/`.
pub(crate) fn normalized(path: &str) -> Option<String> {
    if !path.starts_with('/') || is_normal(path) {
        return None;
    }
    let decoded = decode(path);
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in decoded.split('/').skip(1) {
        let segment = segment.split(';').next().unwrap_or_default();
        trailing = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    (out != path).then_some(out)
}

/// `uri` with its path in normal form, or `None` when it already is.
pub(crate) fn normalized_uri(uri: &Uri) -> Option<Uri> {
    let path = normalized(uri.path())?;
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

/// Whether `path` surely has nothing to normalize: no escape, no `;`,
/// no `\`, no `//` and no `/.` (which every dot segment starts with). One pass over the
/// bytes, since nearly every request passes; a path such as
/// `/.well-known/x` fails it, and [`normalized`] then finds it normal.
#[inline]
pub(crate) fn is_normal(path: &str) -> bool {
    let mut prev = 0;
    for &c in path.as_bytes() {
        if matches!(c, b'%' | b';' | b'\\') || prev == b'/' && matches!(c, b'/' | b'.') {
            return false;
        }
        prev = c;
    }
    true
}

/// `path` with the escapes [`normalized`] decodes undone, and each `\`
/// a `/`. Every other byte is copied as it is, so characters outside ASCII (which a path may
/// hold as UTF-8) stay the characters they were.
fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|c| hex(*c)),
                bytes.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            let c = hi << 4 | lo;
            if c == b'\\' {
                out.push(b'/');
            } else if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'/') {
                out.push(c);
            } else {
                out.extend([b'%', HEX[usize::from(hi)], HEX[usize::from(lo)]]);
            }
            i += 3;
            continue;
        }
        out.push(if b == b'\\' { b'/' } else { b });
        i += 1;
    }
    // Escapes decode to ASCII only, and the rest is `path`'s own UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn normal_paths_are_left_alone() {
        for p in [
            "/", "/admin", "/admin/", "/a/b.c/d", "*", "/a-b_c~d", "/a%20b", "/a.b/..c", "/a%3Bx",
        ] {
            assert_eq!(normalized(p), None, "{p}");
        }
    }

    #[test]
    fn dot_segments_slashes_and_escapes_are_undone() {
        for (p, want) in [
            ("/public/../admin", "/admin"),
            ("/./admin", "/admin"),
            ("//admin", "/admin"),
            ("/admin//x", "/admin/x"),
            ("/%61dmin", "/admin"),
            ("/admin%2Fx", "/admin/x"),
            ("/a%2F..%2Fadmin", "/admin"),
            ("/%2e%2e/admin", "/admin"),
            ("/../../admin", "/admin"),
            ("/admin/.", "/admin/"),
            ("/admin/x/..", "/admin/"),
            ("/..", "/"),
            ("/a%20b//", "/a%20b/"),
            ("/a%3fb/./c", "/a%3Fb/c"),
            ("/public/..;/admin", "/admin"),
            ("/admin;jsessionid=1", "/admin"),
            ("/a;x/b;y/", "/a/b/"),
            ("/;/admin", "/admin"),
            ("/public/..\\admin", "/admin"),
            ("/public\\..\\admin", "/admin"),
            ("/\\admin", "/admin"),
            ("/public/..%5Cadmin", "/admin"),
            ("/a%5cb", "/a/b"),
        ] {
            assert_eq!(normalized(p).as_deref(), Some(want), "{p}");
        }
    }

    /// A path may hold UTF-8 as it is (hyper and `http` accept it): its
    /// normal form keeps those characters, not one character per byte.
    #[test]
    fn characters_outside_ascii_are_kept_as_they_are() {
        for (p, want) in [
            ("/café//admin", "/café/admin"),
            ("/x/../café/./admin", "/café/admin"),
            ("/%61/日本/../語", "/a/語"),
            ("/é%2Fx", "/é/x"),
        ] {
            assert_eq!(normalized(p).as_deref(), Some(want), "{p}");
        }
    }
}
