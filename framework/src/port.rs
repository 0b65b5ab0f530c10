//! `TAG:index:name` port strings, and the tag-ordered port sets a node's streams form.

use std::fmt;

/// One parsed entry of a node's port list: `name`, `TAG:name` or `TAG:index:name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortRef {
    /// The tag (`""` for untagged).
    pub tag: String,
    /// The index within the tag; `None` while an untagged entry still awaits its position.
    pub index: Option<usize>,
    /// The stream or side packet name.
    pub name: String,
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.tag.is_empty(), self.index) {
            (true, _) => f.write_str(&self.name),
            (false, Some(i)) if i > 0 => write!(f, "{}:{}:{}", self.tag, i, self.name),
            _ => write!(f, "{}:{}", self.tag, self.name),
        }
    }
}

fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// True for a valid tag: `[A-Z_][A-Z0-9_]*`.
pub fn is_valid_tag(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn parse_index(s: &str) -> Option<usize> {
    if s == "0"
        || (s.starts_with(|c: char| ('1'..='9').contains(&c))
            && s.chars().all(|c| c.is_ascii_digit()))
    {
        s.parse().ok()
    } else {
        None
    }
}

/// Parses `name`, `TAG:name` or `TAG:index:name`, with MediaPipe's character rules.
///
/// ```
/// use mediagraph_framework::port::parse_port;
/// let p = parse_port("VIDEO:1:frames").unwrap();
/// assert_eq!((p.tag.as_str(), p.index, p.name.as_str()), ("VIDEO", Some(1), "frames"));
/// assert!(parse_port("Video:frames").is_err());
/// ```
pub fn parse_port(s: &str) -> Result<PortRef, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (tag, index, name) = match parts.as_slice() {
        [name] => ("", None, *name),
        [tag, name] => (*tag, Some(0), *name),
        [tag, index, name] => {
            let i = parse_index(index).ok_or_else(|| {
                format!("\"{s}\": index \"{index}\" is not a number like 0, 1, 2")
            })?;
            (*tag, Some(i), *name)
        }
        _ => {
            return Err(format!(
                "\"{s}\" has too many ':'; expected name, TAG:name or TAG:index:name"
            ))
        }
    };
    if !tag.is_empty() && !is_valid_tag(tag) || (tag.is_empty() && parts.len() > 1) {
        return Err(format!(
            "\"{s}\": tag \"{tag}\" must match [A-Z_][A-Z0-9_]*"
        ));
    }
    if !is_valid_name(name) {
        return Err(format!(
            "\"{s}\": name \"{name}\" must match [a-z_][a-z0-9_]*"
        ));
    }
    Ok(PortRef {
        tag: tag.to_string(),
        index,
        name: name.to_string(),
    })
}

/// Parses a `TAG`, `TAG:i`, `:i` or `""` reference to a port (used by sync sets and back edges).
pub fn parse_tag_index(s: &str) -> Result<(String, usize), String> {
    match s.split_once(':') {
        None if s.is_empty() || is_valid_tag(s) => Ok((s.to_string(), 0)),
        Some((tag, i)) if tag.is_empty() || is_valid_tag(tag) => parse_index(i)
            .map(|i| (tag.to_string(), i))
            .ok_or_else(|| format!("\"{s}\": bad index \"{i}\"")),
        _ => Err(format!("\"{s}\" is not TAG, TAG:index or :index")),
    }
}

/// One port of a node, with its dense id inside its [`PortSet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEntry {
    /// The tag.
    pub tag: String,
    /// The index within the tag.
    pub index: usize,
    /// The connected stream or side packet name.
    pub name: String,
}

impl PortEntry {
    /// `TAG:index` as written in messages (`"TAG"` for index 0, `":i"` for untagged).
    pub fn tag_index(&self) -> String {
        if self.tag.is_empty() {
            format!(":{}", self.index)
        } else if self.index == 0 {
            self.tag.clone()
        } else {
            format!("{}:{}", self.tag, self.index)
        }
    }
}

/// A node's ports of one kind, ordered by tag (`""` first) then index; each tag owns a
/// contiguous range of ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet {
    entries: Vec<PortEntry>,
    tags: Vec<(String, usize, usize)>,
}

impl PortSet {
    /// Builds a set from parsed entries, assigning untagged indexes in order and checking that
    /// each tag's indexes are exactly `0..n`.
    pub fn from_refs(refs: &[PortRef]) -> Result<PortSet, String> {
        let mut entries: Vec<PortEntry> = Vec::with_capacity(refs.len());
        let mut next_untagged = 0;
        for r in refs {
            let index = match r.index {
                Some(i) => i,
                None => {
                    next_untagged += 1;
                    next_untagged - 1
                }
            };
            if let Some(prev) = entries.iter().find(|e| e.tag == r.tag && e.index == index) {
                return Err(format!(
                    "port {} already had a name (\"{}\") when \"{}\" was given",
                    PortEntry {
                        tag: r.tag.clone(),
                        index,
                        name: String::new()
                    }
                    .tag_index(),
                    prev.name,
                    r.name
                ));
            }
            entries.push(PortEntry {
                tag: r.tag.clone(),
                index,
                name: r.name.clone(),
            });
        }
        entries.sort_by(|a, b| a.tag.cmp(&b.tag).then(a.index.cmp(&b.index)));
        let mut tags: Vec<(String, usize, usize)> = Vec::new();
        for (id, e) in entries.iter().enumerate() {
            match tags.last_mut() {
                Some((tag, _, count)) if *tag == e.tag => *count += 1,
                _ => tags.push((e.tag.clone(), id, 1)),
            }
        }
        for (tag, start, count) in &tags {
            for i in 0..*count {
                if entries[start + i].index != i {
                    return Err(format!(
                        "not all indexes of tag \"{tag}\" were assigned names (index {i} is missing)"
                    ));
                }
            }
        }
        Ok(PortSet { entries, tags })
    }

    /// Number of ports.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no ports.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The ports in id order.
    pub fn entries(&self) -> &[PortEntry] {
        &self.entries
    }

    /// The port with dense id `id`.
    pub fn entry(&self, id: usize) -> &PortEntry {
        &self.entries[id]
    }

    /// The tags present, in id order.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(|(t, _, _)| t.as_str())
    }

    /// The (first id, count) of `tag`'s ports. Calculators look their ports up on every call,
    /// and tags are short, so a byte loop beats a call to `memcmp` here.
    fn tag_range(&self, tag: &str) -> Option<(usize, usize)> {
        let tag = tag.as_bytes();
        self.tags
            .iter()
            .find(|(t, _, _)| {
                let t = t.as_bytes();
                t.len() == tag.len() && t.iter().zip(tag).all(|(a, b)| a == b)
            })
            .map(|(_, start, count)| (*start, *count))
    }

    /// True if `tag` has at least one port.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tag_range(tag).is_some()
    }

    /// Number of ports with `tag`.
    pub fn count(&self, tag: &str) -> usize {
        self.tag_range(tag).map_or(0, |(_, count)| count)
    }

    /// The dense id of `tag:index`, if present.
    pub fn id(&self, tag: &str, index: usize) -> Option<usize> {
        self.tag_range(tag)
            .and_then(|(start, count)| (index < count).then_some(start + index))
    }

    /// The ids of `tag`'s ports.
    pub fn ids(&self, tag: &str) -> std::ops::Range<usize> {
        self.tag_range(tag)
            .map_or(0..0, |(start, count)| start..start + count)
    }

    /// The id of the port connected to `name`, if any.
    pub fn id_of_name(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[&str]) -> Result<PortSet, String> {
        let refs: Vec<PortRef> = list.iter().map(|s| parse_port(s).unwrap()).collect();
        PortSet::from_refs(&refs)
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(parse_port("a_1").unwrap().index, None);
        assert_eq!(parse_port("TAG:a").unwrap().index, Some(0));
        assert_eq!(parse_port("TAG:2:a").unwrap().index, Some(2));
        assert!(parse_port("TAG:02:a").is_err());
        assert!(parse_port("1abc").is_err());
        assert!(parse_port("TAG:").is_err());
        assert!(parse_port(":a").is_err());
        assert!(parse_port("A:1:b:c").is_err());
    }

    #[test]
    fn untagged_get_indexes_in_order_and_tags_sort_first_empty() {
        let s = set(&["B:x", "a", "A:y", "b"]).unwrap();
        let tags: Vec<&str> = s.tags().collect();
        assert_eq!(tags, vec!["", "A", "B"]);
        assert_eq!(s.id("", 1), Some(1));
        assert_eq!(s.entry(1).name, "b");
        assert_eq!(s.id("B", 0), Some(3));
        assert_eq!(s.count(""), 2);
        assert_eq!(s.id("C", 0), None);
    }

    #[test]
    fn index_rules() {
        assert!(set(&["T:a", "T:b"])
            .unwrap_err()
            .contains("already had a name"));
        assert!(set(&["T:1:a"]).unwrap_err().contains("not all indexes"));
        let s = set(&["T:1:b", "T:0:a"]).unwrap();
        assert_eq!(s.entry(s.id("T", 1).unwrap()).name, "b");
    }

    #[test]
    fn tag_index_references() {
        assert_eq!(parse_tag_index("LOOP").unwrap(), ("LOOP".into(), 0));
        assert_eq!(parse_tag_index("LOOP:2").unwrap(), ("LOOP".into(), 2));
        assert_eq!(parse_tag_index(":1").unwrap(), ("".into(), 1));
        assert_eq!(parse_tag_index("").unwrap(), ("".into(), 0));
        assert!(parse_tag_index("loop").is_err());
    }
}
