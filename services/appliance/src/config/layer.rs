//! One configuration file ("layer"): reading it, checking it on its own, and merging it.
//!
//! Each file is deserialized into the service's config type by itself first, so that an unknown
//! key, a wrong type or an out-of-range value is reported with the position of the offending
//! text in *that* file. Only files that pass are merged as TOML tables; the merge cannot add
//! such errors because it only combines values that were each accepted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigProblem, Origin, reword};

/// A configuration file that was read and accepted on its own.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// Where the file is.
    pub path: PathBuf,
    /// Its text, kept to find the position of keys named by later checks.
    pub text: String,
    /// Its content as a TOML table, for merging.
    pub table: toml::Table,
}

/// Reads `path` as UTF-8 text.
///
/// `Ok(None)` when the file does not exist and is optional: the layer is simply absent. Every
/// other failure (missing but required, permission denied, a directory, not UTF-8) is a problem
/// that names the file, because silently skipping a site file would run with the wrong settings.
pub(crate) fn read_text(path: &Path, required: bool) -> Result<Option<String>, ConfigProblem> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return if required {
                Err(ConfigProblem::Missing {
                    path: path.to_path_buf(),
                })
            } else {
                Ok(None)
            };
        }
        Err(source) => {
            return Err(ConfigProblem::Unreadable {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if metadata.is_dir() {
        return Err(ConfigProblem::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let bytes = fs::read(path).map_err(|source| ConfigProblem::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            // Everything before `offset` is valid UTF-8, so the position can be computed on it.
            let valid = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
            Err(ConfigProblem::NotUtf8 {
                origin: Origin::at_offset(path, valid, offset),
                byte: bytes[offset],
            })
        }
    }
}

/// Checks `text` (the content of `path`) on its own as a `T`, and returns the value and its table.
pub(crate) fn parse<T: DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<(T, toml::Table), ConfigProblem> {
    let value = toml::from_str::<T>(text).map_err(|e| toml_problem(path, text, &e))?;
    let table = text
        .parse::<toml::Table>()
        .map_err(|e| toml_problem(path, text, &e))?;
    Ok((value, table))
}

/// Reads and checks one file as a layer; `Ok(None)` if it is optional and absent.
pub(crate) fn load<T: DeserializeOwned>(
    path: &Path,
    required: bool,
) -> Result<Option<Layer>, ConfigProblem> {
    let Some(text) = read_text(path, required)? else {
        return Ok(None);
    };
    let (_checked, table) = parse::<T>(path, &text)?;
    Ok(Some(Layer {
        path: path.to_path_buf(),
        text,
        table,
    }))
}

/// A toml error as a problem positioned at the offending text.
pub(crate) fn toml_problem(path: &Path, text: &str, error: &toml::de::Error) -> ConfigProblem {
    let origin = match error.span() {
        Some(span) => Origin::at_offset(path, text, span.start),
        None => Origin::File(path.to_path_buf()),
    };
    ConfigProblem::Invalid {
        origin,
        message: reword(error.message()),
    }
}

/// Merges `over` into `base`: tables merge key by key, anything else (arrays too) is replaced.
///
/// Arrays replace rather than append so that a site file can remove an entry the image ships
/// (e.g. a pool) by listing the ones it wants.
pub(crate) fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => {
                merge(base_table, over_table);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The position in `layer` of the key named by the dotted `key_path`, if that file sets it.
///
/// The path uses dots between table keys and `[N]` for array elements, e.g. `pool.failover_after`
/// or `nic[1].name`. The position is that of the key (or of the `[[array]]` header for an
/// element), which is where an operator starts editing.
pub(crate) fn locate(layer: &Layer, key_path: &str) -> Option<Origin> {
    let root = DeTable::parse(&layer.text).ok()?;
    let segments = parse_key_path(key_path)?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut found: Option<std::ops::Range<usize>> = None;
    let last = segments.len().checked_sub(1)?;
    for (i, segment) in segments.iter().enumerate() {
        let (key, value) = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == segment.name)?;
        let mut value = value;
        found = Some(key.span());
        for &index in &segment.indices {
            let DeValue::Array(array) = value.get_ref() else {
                return None;
            };
            value = array.get(index)?;
            found = Some(value.span());
        }
        if i < last {
            let DeValue::Table(inner) = value.get_ref() else {
                return None;
            };
            table = inner;
        }
    }
    found.map(|span| Origin::at_offset(&layer.path, &layer.text, span.start))
}

/// One step of a key path: a key, then zero or more array indices.
#[derive(Debug, PartialEq, Eq)]
struct Segment<'a> {
    name: &'a str,
    indices: Vec<usize>,
}

/// Splits `a.b[2].c` into segments; `None` if it is not of that form.
fn parse_key_path(path: &str) -> Option<Vec<Segment<'_>>> {
    path.split('.')
        .map(|part| {
            let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
            if name.is_empty() {
                return None;
            }
            let mut indices = Vec::new();
            if !rest.is_empty() {
                rest = rest.strip_suffix(']')?;
                for index in rest.split("][") {
                    indices.push(index.parse().ok()?);
                }
            }
            Some(Segment { name, indices })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(text: &str) -> Layer {
        Layer {
            path: PathBuf::from("/x.toml"),
            text: text.to_string(),
            table: text.parse().unwrap(),
        }
    }

    fn position(origin: Option<Origin>) -> Option<(usize, usize)> {
        match origin? {
            Origin::Position { line, column, .. } => Some((line, column)),
            other => panic!("expected a position, got {other:?}"),
        }
    }

    #[test]
    fn key_paths_parse() {
        assert_eq!(
            parse_key_path("a.b[2].c").unwrap(),
            vec![
                Segment {
                    name: "a",
                    indices: vec![]
                },
                Segment {
                    name: "b",
                    indices: vec![2]
                },
                Segment {
                    name: "c",
                    indices: vec![]
                },
            ]
        );
        assert_eq!(parse_key_path("m[1][0]").unwrap()[0].indices, vec![1, 0]);
        assert!(parse_key_path("a..b").is_none());
        assert!(parse_key_path("a[x]").is_none());
        assert!(parse_key_path("a[1").is_none());
    }

    #[test]
    fn locate_finds_nested_keys_and_array_elements() {
        let l = layer(
            "top = 1\n[pool]\n  failover_after = 5\n[[nic]]\nname = \"a\"\n[[nic]]\nname = \"b\"\n",
        );
        assert_eq!(position(locate(&l, "top")), Some((1, 1)));
        assert_eq!(position(locate(&l, "pool.failover_after")), Some((3, 3)));
        assert_eq!(position(locate(&l, "pool")), Some((2, 2)));
        assert_eq!(position(locate(&l, "nic[1]")), Some((6, 1)));
        assert_eq!(position(locate(&l, "nic[1].name")), Some((7, 1)));
        assert_eq!(locate(&l, "pool.missing"), None);
        assert_eq!(locate(&l, "nic[5].name"), None);
        assert_eq!(locate(&l, "top.deeper"), None);
    }

    #[test]
    fn merge_is_deep_for_tables_and_replaces_arrays() {
        let mut base: toml::Table = "a = 1\nlist = [1, 2]\n[t]\nx = 1\ny = 2\n[t.inner]\nz = 3\n"
            .parse()
            .unwrap();
        let over: toml::Table = "list = [9]\n[t]\ny = 20\n[t.inner]\nw = 4\n"
            .parse()
            .unwrap();
        merge(&mut base, over);
        let expected: toml::Table =
            "a = 1\nlist = [9]\n[t]\nx = 1\ny = 20\n[t.inner]\nz = 3\nw = 4\n"
                .parse()
                .unwrap();
        assert_eq!(base, expected);
    }

    #[test]
    fn a_scalar_may_replace_a_table_and_back() {
        let mut base: toml::Table = "[t]\nx = 1\n".parse().unwrap();
        merge(&mut base, "t = 5\n".parse().unwrap());
        assert_eq!(base["t"], toml::Value::Integer(5));
    }
}
