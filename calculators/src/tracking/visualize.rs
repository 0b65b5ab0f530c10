//! Drawing feature tracks for people to look at: each track's recent positions as a
//! polyline, green for background (refined IRLS weight > 0.5), red for independently moving
//! features, on an interleaved 8-bit RGB(A) or gray image. Pure Rust, no OpenCV.

use std::collections::HashMap;

use super::region_flow::RegionFlowFeatureList;

/// Recent positions of every live track.
#[derive(Clone, Debug, Default)]
pub struct TrackHistory {
    max_len: usize,
    tracks: HashMap<i32, Vec<(f32, f32)>>,
}

impl TrackHistory {
    /// Keeps up to `max_len` positions per track.
    pub fn new(max_len: usize) -> TrackHistory {
        TrackHistory {
            max_len: max_len.max(1),
            tracks: HashMap::new(),
        }
    }

    /// Adds a frame's features (nominal px, divided by `scale` to image px); tracks absent
    /// from the frame are forgotten.
    pub fn update(&mut self, list: &RegionFlowFeatureList, scale: f32) {
        let mut next = HashMap::with_capacity(list.features.len());
        for f in &list.features {
            let mut path = self
                .tracks
                .remove(&f.track_id)
                .unwrap_or_else(|| vec![((f.x + f.dx) / scale, (f.y + f.dy) / scale)]);
            path.push((f.x / scale, f.y / scale));
            if path.len() > self.max_len {
                path.remove(0);
            }
            next.insert(f.track_id, path);
        }
        self.tracks = next;
    }

    /// Number of live tracks.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// Whether there are no live tracks.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Draws the tracks of `list` (its weights choose the colours) onto `pixels`.
    pub fn draw(
        &self,
        list: &RegionFlowFeatureList,
        pixels: &mut [u8],
        width: usize,
        height: usize,
        channels: usize,
    ) {
        if pixels.len() < width * height * channels || channels == 0 {
            return;
        }
        for f in &list.features {
            let Some(path) = self.tracks.get(&f.track_id) else {
                continue;
            };
            let color = if f.irls_weight > 0.5 {
                [40, 230, 40]
            } else {
                [250, 40, 40]
            };
            for w in path.windows(2) {
                draw_line(pixels, width, height, channels, w[0], w[1], color);
            }
            if let Some(&(x, y)) = path.last() {
                for (dx, dy) in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)] {
                    put(
                        pixels,
                        width,
                        height,
                        channels,
                        x as i64 + dx,
                        y as i64 + dy,
                        color,
                    );
                }
            }
        }
    }
}

fn put(pixels: &mut [u8], w: usize, h: usize, ch: usize, x: i64, y: i64, color: [u8; 3]) {
    if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
        return;
    }
    let i = (y as usize * w + x as usize) * ch;
    if ch >= 3 {
        pixels[i..i + 3].copy_from_slice(&color);
    } else {
        pixels[i] =
            ((u32::from(color[0]) + u32::from(color[1]) * 2 + u32::from(color[2])) / 4) as u8;
    }
}

fn draw_line(
    pixels: &mut [u8],
    w: usize,
    h: usize,
    ch: usize,
    a: (f32, f32),
    b: (f32, f32),
    color: [u8; 3],
) {
    if !(a.0.is_finite() && a.1.is_finite() && b.0.is_finite() && b.1.is_finite()) {
        return;
    }
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil().min(4096.0) as usize;
    for s in 0..=steps {
        let t = if steps == 0 {
            0.0
        } else {
            s as f32 / steps as f32
        };
        let x = a.0 + (b.0 - a.0) * t;
        let y = a.1 + (b.1 - a.1) * t;
        put(pixels, w, h, ch, x.round() as i64, y.round() as i64, color);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracking::region_flow::RegionFlowFeature;

    #[test]
    fn draws_paths_inside_the_image() {
        let mut hist = TrackHistory::new(5);
        let mut list = RegionFlowFeatureList::default();
        list.features.push(RegionFlowFeature {
            x: 10.0,
            y: 10.0,
            dx: 6.0,
            dy: 0.0,
            track_id: 3,
            irls_weight: 2.0,
            ..Default::default()
        });
        list.features.push(RegionFlowFeature {
            x: 1e9,
            y: -5.0,
            track_id: 4,
            ..Default::default()
        });
        hist.update(&list, 2.0);
        assert_eq!(hist.len(), 2);
        let mut px = vec![0u8; 20 * 10 * 3];
        hist.draw(&list, &mut px, 20, 10, 3);
        let i = (5 * 20 + 7) * 3;
        assert_eq!(&px[i..i + 3], &[40, 230, 40]);
        hist.draw(&list, &mut [0u8; 3], 20, 10, 3);
    }
}
