//! `TrackingData`: one frame's residual (object) motion on a 256x192 grid in compressed
//! sparse column layout, plus the background model, and its little-endian binary codec with
//! 16-bit (or 8-bit) quantized vectors.

use serde::{Deserialize, Serialize};

use super::camera_motion::Homography;
use super::TrackingError;

/// `frame_flags`: the encoding uses the high profile (delta coding; not produced here).
pub const FLAG_PROFILE_HIGH: i32 = 1;
/// `frame_flags`: the vectors of the binary form are 16-bit.
pub const FLAG_HIGH_FIDELITY_VECTORS: i32 = 2;
/// `frame_flags`: no usable background model (identity implied).
pub const FLAG_BACKGROUND_UNSTABLE: i32 = 4;
/// `frame_flags`: the frame duplicates the previous one.
pub const FLAG_DUPLICATED: i32 = 8;
/// `frame_flags`: first frame of a chunk.
pub const FLAG_CHUNK_BOUNDARY: i32 = 16;

/// The features of a frame in compressed sparse column form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MotionData {
    /// Number of features.
    pub num_elements: i32,
    /// Interleaved (dx, dy) residual motion per feature, in domain units.
    pub vector_data: Vec<f32>,
    /// The row (domain y) of each feature.
    pub row_indices: Vec<i32>,
    /// `domain_width + 1` entries; column c holds features `col_starts[c]..col_starts[c+1]`.
    pub col_starts: Vec<i32>,
    /// Long-track id of each feature (empty after a binary round trip).
    pub track_id: Vec<i32>,
    /// Track ids that ended on purpose in this frame.
    pub actively_discarded_tracked_ids: Vec<i32>,
}

/// Compact tracking data of one frame (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackingData {
    /// `FLAG_*` bits.
    pub frame_flags: i32,
    /// Domain width (256).
    pub domain_width: i32,
    /// Domain height (192).
    pub domain_height: i32,
    /// Frame width / height.
    pub frame_aspect: f32,
    /// Camera motion (current -> previous) in domain units; `None` when unstable.
    pub background_model: Option<Homography>,
    /// The features.
    pub motion_data: MotionData,
    /// Number of features before packing.
    pub global_feature_count: i32,
    /// Average flow magnitude of the frame (nominal px).
    pub average_motion_magnitude: f32,
}

impl Default for TrackingData {
    fn default() -> Self {
        TrackingData {
            frame_flags: 0,
            domain_width: 256,
            domain_height: 192,
            frame_aspect: 4.0 / 3.0,
            background_model: None,
            motion_data: MotionData {
                col_starts: vec![0; 257],
                ..Default::default()
            },
            global_feature_count: 0,
            average_motion_magnitude: 0.0,
        }
    }
}

mediagraph_framework::register_packet_type!(TrackingData, "TrackingData");

impl TrackingData {
    /// Checks the CSC layout's invariants.
    pub fn validate(&self) -> Result<(), TrackingError> {
        let bad = |m: String| Err(TrackingError::Decode(m));
        let md = &self.motion_data;
        if self.domain_width <= 0 || self.domain_height <= 0 {
            return bad(format!(
                "domain {}x{} is empty",
                self.domain_width, self.domain_height
            ));
        }
        let n = md.num_elements;
        if n < 0 || md.row_indices.len() != n as usize || md.vector_data.len() != 2 * n as usize {
            return bad(format!(
                "{n} elements but {} rows and {} vector values",
                md.row_indices.len(),
                md.vector_data.len()
            ));
        }
        if md.col_starts.len() != self.domain_width as usize + 1
            || md.col_starts.first() != Some(&0)
            || md.col_starts.last() != Some(&n)
            || md.col_starts.windows(2).any(|w| w[1] < w[0])
        {
            return bad("column starts are not a monotone 0..num_elements table".into());
        }
        if md
            .row_indices
            .iter()
            .any(|&r| r < 0 || r >= self.domain_height)
        {
            return bad("row index outside the domain".into());
        }
        if !md.track_id.is_empty() && md.track_id.len() != n as usize {
            return bad("track ids do not match the elements".into());
        }
        Ok(())
    }

    /// Features of column `c` as (row, dx, dy, track id if known).
    pub fn column(&self, c: usize) -> impl Iterator<Item = (i32, f32, f32, Option<i32>)> + '_ {
        let md = &self.motion_data;
        let (a, b) = match (md.col_starts.get(c), md.col_starts.get(c + 1)) {
            (Some(&a), Some(&b)) if a >= 0 && b >= a => (a as usize, b as usize),
            _ => (0, 0),
        };
        let b = b.min(md.row_indices.len());
        (a.min(b)..b).map(move |i| {
            (
                md.row_indices[i],
                md.vector_data.get(2 * i).copied().unwrap_or(0.0),
                md.vector_data.get(2 * i + 1).copied().unwrap_or(0.0),
                md.track_id.get(i).copied(),
            )
        })
    }
}

/// Encodes `data` in the binary format (`high_fidelity`: 16-bit vectors, else 8-bit).
/// Track ids are not part of the format.
pub fn encode(data: &TrackingData, high_fidelity: bool) -> Result<Vec<u8>, TrackingError> {
    data.validate()
        .map_err(|e| TrackingError::Encode(e.to_string()))?;
    let (dw, dh) = (data.domain_width, data.domain_height);
    if dw > 256 || dh >= 256 {
        return Err(TrackingError::Encode(format!(
            "domain {dw}x{dh} exceeds 256x255"
        )));
    }
    let md = &data.motion_data;
    let n = md.num_elements as usize;
    let mut out = Vec::with_capacity(64 + dw as usize + 5 * n);
    let mut flags = data.frame_flags & !FLAG_PROFILE_HIGH;
    if high_fidelity {
        flags |= FLAG_HIGH_FIDELITY_VECTORS;
    } else {
        flags &= !FLAG_HIGH_FIDELITY_VECTORS;
    }
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&dw.to_le_bytes());
    out.extend_from_slice(&dh.to_le_bytes());
    out.extend_from_slice(&data.frame_aspect.to_le_bytes());
    let model = data.background_model.unwrap_or(Homography::IDENTITY);
    for v in model.to_array() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let max_abs = md
        .vector_data
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .clamp(1e-4, 0.2 * (dw as f32).hypot(dh as f32));
    let range = if high_fidelity { 32767.0 } else { 127.0 };
    let scale = (range / max_abs).ceil().max(1.0) as i32;
    out.extend_from_slice(&scale.to_le_bytes());
    out.extend_from_slice(&(n as i32).to_le_bytes());
    let mut prev = 0;
    for &c in &md.col_starts {
        let delta = c - prev;
        if !(0..=255).contains(&delta) {
            return Err(TrackingError::Encode(format!(
                "a column holds {delta} entries (at most 255)"
            )));
        }
        out.push(delta as u8);
        prev = c;
    }
    out.extend_from_slice(&(n as i32).to_le_bytes());
    out.extend(md.row_indices.iter().map(|&r| r as u8));
    out.extend_from_slice(&(2 * n as i32).to_le_bytes());
    for &v in &md.vector_data {
        let q = if v.is_finite() {
            (v * scale as f32).trunc()
        } else {
            0.0
        };
        if high_fidelity {
            let q = q.clamp(-32768.0, 32767.0) as i16;
            out.extend_from_slice(&q.to_le_bytes());
        } else {
            out.push(q.clamp(-128.0, 127.0) as i8 as u8);
        }
    }
    Ok(out)
}

/// Reads values off a byte slice, failing (never panicking) at the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TrackingError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                TrackingError::Decode(format!(
                    "truncated at byte {} reading {what} ({n} bytes)",
                    self.pos
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn i32(&mut self, what: &str) -> Result<i32, TrackingError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32(&mut self, what: &str) -> Result<f32, TrackingError> {
        let b = self.take(4, what)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Decodes a blob written by [`encode`] (low profile). Any inconsistency is an error.
pub fn decode(blob: &[u8]) -> Result<TrackingData, TrackingError> {
    let bad = |m: String| TrackingError::Decode(m);
    let mut r = Reader { buf: blob, pos: 0 };
    let flags = r.i32("frame flags")?;
    if flags & FLAG_PROFILE_HIGH != 0 {
        return Err(bad("high-profile encoding is not supported".into()));
    }
    let dw = r.i32("domain width")?;
    let dh = r.i32("domain height")?;
    if !(1..=256).contains(&dw) || !(1..256).contains(&dh) {
        return Err(bad(format!("domain {dw}x{dh} outside 1..=256 x 1..=255")));
    }
    let aspect = r.f32("frame aspect")?;
    if !aspect.is_finite() || aspect <= 0.0 {
        return Err(bad(format!("frame aspect {aspect} is not positive")));
    }
    let mut h = [0f32; 8];
    for v in &mut h {
        *v = r.f32("background model")?;
        if !v.is_finite() {
            return Err(bad("background model is not finite".into()));
        }
    }
    let scale = r.i32("scale")?;
    if scale <= 0 {
        return Err(bad(format!("scale {scale} is not positive")));
    }
    let n = r.i32("vector count")?;
    if n < 0 || n as usize > blob.len() {
        return Err(bad(format!("vector count {n} is impossible")));
    }
    let n = n as usize;
    let deltas = r.take(dw as usize + 1, "column starts")?;
    let mut col_starts = Vec::with_capacity(deltas.len());
    let mut acc = 0i32;
    for &d in deltas {
        acc += i32::from(d);
        col_starts.push(acc);
    }
    if col_starts[0] != 0 || acc as usize != n {
        return Err(bad(format!(
            "column starts add up to {acc}, expected {n} (first {})",
            col_starts[0]
        )));
    }
    let rows_len = r.i32("row index count")?;
    if rows_len < 0 || rows_len as usize != n {
        return Err(bad(format!("{rows_len} row indices for {n} vectors")));
    }
    let rows = r.take(n, "row indices")?;
    if let Some(&bad_row) = rows.iter().find(|&&y| i32::from(y) >= dh) {
        return Err(bad(format!("row index {bad_row} outside height {dh}")));
    }
    let vec_len = r.i32("vector value count")?;
    if vec_len < 0 || vec_len as usize != 2 * n {
        return Err(bad(format!("{vec_len} vector values for {n} vectors")));
    }
    let high = flags & FLAG_HIGH_FIDELITY_VECTORS != 0;
    let bytes = r.take(if high { 4 * n } else { 2 * n }, "vector data")?;
    let vector_data: Vec<f32> = if high {
        bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / scale as f32)
            .collect()
    } else {
        bytes
            .iter()
            .map(|&b| f32::from(b as i8) / scale as f32)
            .collect()
    };
    if r.pos != blob.len() {
        return Err(bad(format!("{} trailing bytes", blob.len() - r.pos)));
    }
    let frame_flags = flags & !FLAG_HIGH_FIDELITY_VECTORS;
    let model = Homography::from_array(h);
    let background_model = (frame_flags & FLAG_BACKGROUND_UNSTABLE == 0).then_some(model);
    Ok(TrackingData {
        frame_flags,
        domain_width: dw,
        domain_height: dh,
        frame_aspect: aspect,
        background_model,
        motion_data: MotionData {
            num_elements: n as i32,
            vector_data,
            row_indices: rows.iter().map(|&y| i32::from(y)).collect(),
            col_starts,
            track_id: Vec::new(),
            actively_discarded_tracked_ids: Vec::new(),
        },
        global_feature_count: n as i32,
        average_motion_magnitude: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TrackingData {
        let mut d = TrackingData {
            frame_flags: FLAG_DUPLICATED,
            background_model: Some(Homography {
                h02: 1.5,
                h12: -0.25,
                h20: 1e-4,
                ..Homography::IDENTITY
            }),
            global_feature_count: 5,
            ..Default::default()
        };
        let feats = [
            (3, 10, 1.25, -0.5),
            (3, 11, 0.0, 7.0),
            (40, 0, -3.5, 2.0),
            (255, 191, 0.1, 0.1),
        ];
        let md = &mut d.motion_data;
        let mut col_starts = vec![0; 257];
        for &(c, r, dx, dy) in &feats {
            md.row_indices.push(r);
            md.vector_data.extend([dx, dy]);
            md.track_id.push(r * 7);
            col_starts[c as usize + 1] += 1;
        }
        for c in 0..256 {
            col_starts[c + 1] += col_starts[c];
        }
        md.col_starts = col_starts;
        md.num_elements = feats.len() as i32;
        d
    }

    #[test]
    fn round_trip_16_and_8_bit() {
        let d = sample();
        d.validate().unwrap();
        for high in [true, false] {
            let blob = encode(&d, high).unwrap();
            let back = decode(&blob).unwrap();
            assert_eq!(back.frame_flags, d.frame_flags);
            assert_eq!(back.background_model, d.background_model);
            assert_eq!(back.motion_data.col_starts, d.motion_data.col_starts);
            assert_eq!(back.motion_data.row_indices, d.motion_data.row_indices);
            assert!(back.motion_data.track_id.is_empty());
            // scale = ceil(range / max), so the largest component may saturate slightly
            // (by under one quantization step of the unrounded scale) as in the reference.
            let scale = if high {
                (32767.0f32 / 7.0).ceil()
            } else {
                (127.0f32 / 7.0).ceil()
            };
            let range = if high { 32767.0 } else { 127.0 };
            let tol = (1.0 / scale).max(7.0 - range / scale) * 1.001;
            for (a, b) in back
                .motion_data
                .vector_data
                .iter()
                .zip(&d.motion_data.vector_data)
            {
                assert!((a - b).abs() <= tol, "{a} vs {b}");
            }
            assert_eq!(encode(&back, high).unwrap().len(), blob.len());
        }
        let mut unstable = d.clone();
        unstable.frame_flags |= FLAG_BACKGROUND_UNSTABLE;
        unstable.background_model = None;
        let back = decode(&encode(&unstable, true).unwrap()).unwrap();
        assert_eq!(back.background_model, None);
    }

    #[test]
    fn malformed_blobs_are_errors() {
        let blob = encode(&sample(), true).unwrap();
        for cut in 0..blob.len() {
            assert!(decode(&blob[..cut]).is_err(), "prefix of {cut} bytes");
        }
        let mut extra = blob.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        let mut bad_row = blob.clone();
        // The first row index sits after the header (4*4 + 32), scale, count, 257 deltas
        // and the row count.
        bad_row[16 + 32 + 8 + 257 + 4] = 250;
        assert!(decode(&bad_row).is_err());
        let mut too_many = sample();
        too_many.motion_data.col_starts[1..]
            .iter_mut()
            .for_each(|c| *c += 300);
        assert!(encode(&too_many, true).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoder_never_panics_on_mutations(
            edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..8),
            cut in 0usize..400,
        ) {
            let mut blob = encode(&sample(), true).unwrap();
            for (i, v) in edits {
                let len = blob.len();
                blob[i % len] = v;
            }
            blob.truncate(blob.len() - cut.min(blob.len()) / 8);
            if let Ok(d) = decode(&blob) {
                prop_assert!(d.validate().is_ok());
            }
        }
    }
}
