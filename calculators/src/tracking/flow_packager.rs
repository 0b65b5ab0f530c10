//! FlowPackager: region flow + camera motion -> [`TrackingData`]. Features are quantized to
//! the domain grid (256x192), sorted by column then row, and store their residual motion
//! (the flow minus the camera motion at the quantized point).

use serde::{Deserialize, Serialize};

use super::camera_motion::{CameraMotion, CameraMotionType};
use super::region_flow::RegionFlowFeatureList;
use super::tracking_data::{
    MotionData, TrackingData, FLAG_BACKGROUND_UNSTABLE, FLAG_CHUNK_BOUNDARY, FLAG_DUPLICATED,
};

/// Options of the packer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowPackagerOptions {
    /// Domain width.
    pub domain_width: i32,
    /// Domain height.
    pub domain_height: i32,
}

impl Default for FlowPackagerOptions {
    fn default() -> Self {
        FlowPackagerOptions {
            domain_width: 256,
            domain_height: 192,
        }
    }
}

/// Packs frames (stateless apart from its options).
#[derive(Clone, Debug, Default)]
pub struct FlowPackager {
    options: FlowPackagerOptions,
}

impl FlowPackager {
    /// A packer; the domain is clamped to 1..=256 x 1..=255 so the data stays encodable.
    pub fn new(options: FlowPackagerOptions) -> FlowPackager {
        FlowPackager {
            options: FlowPackagerOptions {
                domain_width: options.domain_width.clamp(1, 256),
                domain_height: options.domain_height.clamp(1, 255),
            },
        }
    }

    /// The (clamped) options.
    pub fn options(&self) -> &FlowPackagerOptions {
        &self.options
    }

    /// Packs one frame. `camera` may be missing (then the background counts as unstable).
    pub fn pack(
        &self,
        flow: &RegionFlowFeatureList,
        camera: Option<&CameraMotion>,
    ) -> TrackingData {
        let (dw, dh) = (self.options.domain_width, self.options.domain_height);
        let (fw, fh) = (
            flow.frame_width.max(1) as f32,
            flow.frame_height.max(1) as f32,
        );
        let (sx, sy) = (dw as f32 / fw, dh as f32 / fh);
        let mut flags = 0;
        let background = camera
            .filter(|c| c.motion_type <= CameraMotionType::UnstableSim)
            .map(|c| c.homography.scaled(sx, sy));
        if background.is_none() {
            flags |= FLAG_BACKGROUND_UNSTABLE;
        }
        if flow.is_duplicated {
            flags |= FLAG_DUPLICATED;
        }
        if camera.is_some_and(|c| c.flags & super::camera_motion::CAMERA_FLAG_DUPLICATED != 0) {
            flags |= FLAG_DUPLICATED;
        }
        flags &= !FLAG_CHUNK_BOUNDARY;

        // (column, row, dx, dy, track id)
        let mut items: Vec<(i32, i32, f32, f32, i32)> = flow
            .features
            .iter()
            .filter(|f| f.x.is_finite() && f.y.is_finite() && f.dx.is_finite() && f.dy.is_finite())
            .map(|f| {
                let c = ((f.x * sx).round() as i32).clamp(0, dw - 1);
                let r = ((f.y * sy).round() as i32).clamp(0, dh - 1);
                let (fx, fy) = (f.dx * sx, f.dy * sy);
                let (vx, vy) = match &background {
                    Some(h) => {
                        let (mx, my) = h.map(c as f32, r as f32);
                        (fx - (mx - c as f32), fy - (my - r as f32))
                    }
                    None => (fx, fy),
                };
                (c, r, vx, vy, f.track_id)
            })
            .collect();
        items.sort_by_key(|a| (a.0, a.1));

        let mut md = MotionData {
            num_elements: items.len() as i32,
            vector_data: Vec::with_capacity(2 * items.len()),
            row_indices: Vec::with_capacity(items.len()),
            col_starts: vec![0; dw as usize + 1],
            track_id: Vec::with_capacity(items.len()),
            actively_discarded_tracked_ids: flow.actively_discarded_tracked_ids.clone(),
        };
        for &(c, r, vx, vy, id) in &items {
            md.vector_data.extend([vx, vy]);
            md.row_indices.push(r);
            md.track_id.push(id);
            md.col_starts[c as usize + 1] += 1;
        }
        for c in 0..dw as usize {
            md.col_starts[c + 1] += md.col_starts[c];
        }
        TrackingData {
            frame_flags: flags,
            domain_width: dw,
            domain_height: dh,
            frame_aspect: fw / fh,
            background_model: background,
            motion_data: md,
            global_feature_count: flow.features.len() as i32,
            average_motion_magnitude: camera.map_or(0.0, |c| c.average_magnitude),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracking::camera_motion::{Homography, LinearSimilarityModel};
    use crate::tracking::region_flow::RegionFlowFeature;
    use crate::tracking::tracking_data::{decode, encode};

    fn flow() -> RegionFlowFeatureList {
        let mut list = RegionFlowFeatureList {
            frame_width: 640,
            frame_height: 480,
            actively_discarded_tracked_ids: vec![9],
            ..Default::default()
        };
        // Background moving by (5, 0) px@640, and one object feature moving by (-10, 2).
        for (i, &(x, y)) in [(100.0, 50.0), (10.0, 400.0), (600.0, 100.0), (100.0, 20.0)]
            .iter()
            .enumerate()
        {
            list.features.push(RegionFlowFeature {
                x,
                y,
                dx: 5.0,
                dy: 0.0,
                track_id: i as i32,
                ..Default::default()
            });
        }
        list.features.push(RegionFlowFeature {
            x: 320.0,
            y: 240.0,
            dx: -10.0,
            dy: 2.0,
            track_id: 77,
            ..Default::default()
        });
        list
    }

    #[test]
    fn packs_residual_motion_in_sorted_csc() {
        let camera = CameraMotion {
            homography: Homography::from(LinearSimilarityModel {
                dx: 5.0,
                dy: 0.0,
                a: 1.0,
                b: 0.0,
            }),
            motion_type: CameraMotionType::Valid,
            ..Default::default()
        };
        let p = FlowPackager::default();
        let d = p.pack(&flow(), Some(&camera));
        d.validate().unwrap();
        assert_eq!(d.frame_flags & FLAG_BACKGROUND_UNSTABLE, 0);
        assert_eq!(d.motion_data.num_elements, 5);
        assert_eq!(d.motion_data.actively_discarded_tracked_ids, vec![9]);
        // Column 4 (x 10 -> 4), then column 40 rows 8 and 20, ...
        let order: Vec<i32> = d.motion_data.track_id.clone();
        assert_eq!(order, vec![1, 3, 0, 77, 2]);
        let bg = d.background_model.unwrap();
        assert!((bg.h02 - 2.0).abs() < 1e-5);
        for (i, id) in d.motion_data.track_id.iter().enumerate() {
            let (vx, vy) = (
                d.motion_data.vector_data[2 * i],
                d.motion_data.vector_data[2 * i + 1],
            );
            if *id == 77 {
                assert!((vx + 6.0).abs() < 1e-4 && (vy - 0.8).abs() < 1e-4);
            } else {
                assert!(vx.abs() < 1e-4 && vy.abs() < 1e-4);
            }
        }
        let c40: Vec<_> = d.column(40).map(|(r, ..)| r).collect();
        assert_eq!(c40, vec![8, 20]);
        assert!(decode(&encode(&d, true).unwrap()).is_ok());
    }

    #[test]
    fn unstable_camera_keeps_raw_flow() {
        let camera = CameraMotion {
            motion_type: CameraMotionType::Unstable,
            ..Default::default()
        };
        let d = FlowPackager::default().pack(&flow(), Some(&camera));
        assert_ne!(d.frame_flags & FLAG_BACKGROUND_UNSTABLE, 0);
        assert!(d.background_model.is_none());
        assert!((d.motion_data.vector_data[0] - 2.0).abs() < 1e-5);
        let d = FlowPackager::default().pack(&RegionFlowFeatureList::default(), None);
        d.validate().unwrap();
        assert_eq!(d.motion_data.num_elements, 0);
    }
}
