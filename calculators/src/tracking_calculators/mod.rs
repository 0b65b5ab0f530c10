//! Calculators of MediaPipe's box-tracking front half, thin adapters over
//! [`crate::tracking`]:
//!
//! * [`MotionAnalysisCalculator`]: frames -> camera motion and region flow (with long
//!   feature tracks), optionally a visualization of the tracks.
//! * [`FlowPackagerCalculator`]: region flow + camera motion -> compact [`TrackingData`].
//! * [`BoxTrackerCalculator`]: tracking data + start boxes -> tracked boxes per frame
//!   (catch-up, cancel, random access).
//! * [`TimedBoxesToAnnotationsCalculator`]: tracked boxes -> annotations to draw.
//!
//! [`TrackingData`]: crate::tracking::TrackingData

pub mod box_tracker_calculator;
pub mod flow_packager_calculator;
pub mod motion_analysis_calculator;
pub mod timed_boxes_to_annotations_calculator;

pub use box_tracker_calculator::{BoxTrackerCalculator, BoxTrackerCalculatorOptions};
pub use flow_packager_calculator::{FlowPackagerCalculator, FlowPackagerCalculatorOptions};
pub use motion_analysis_calculator::{MotionAnalysisCalculator, MotionAnalysisCalculatorOptions};
pub use timed_boxes_to_annotations_calculator::{
    TimedBoxesToAnnotationsCalculator, TimedBoxesToAnnotationsCalculatorOptions,
};

#[cfg(test)]
mod tests {
    use crate::image::{ImageFormat, ImageFrame};
    use crate::test_util::*;
    use crate::tracking::{CameraMotion, CameraMotionType, RegionFlowFeatureList, TrackingData};

    /// A 320x240 RGB frame of a smooth texture shifted by (sx, sy) analysis px.
    fn frame(sx: f32, sy: f32) -> ImageFrame {
        let (w, h) = (320usize, 240usize);
        let mut px = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let (u, v) = (x as f32 - sx, y as f32 - sy);
                let t = 128.0
                    + 50.0 * (u * 0.23).sin() * (v * 0.19).cos()
                    + 40.0 * ((u * 0.07 + v * 0.11).sin() * (u * 0.031).cos());
                let g = t.clamp(0.0, 255.0) as u8;
                px.extend([g, g / 2 + 60, 255 - g]);
            }
        }
        ImageFrame::from_pixels(ImageFormat::Srgb, w as u32, h as u32, px).unwrap()
    }

    #[test]
    fn graph_produces_camera_flow_tracking_and_viz() {
        let mut g = graph(
            r#"
input_stream: [video]
node:
  - calculator: MotionAnalysisCalculator
    input_stream: ["VIDEO:video"]
    output_stream: ["CAMERA:camera", "FLOW:flow", "VIZ:viz"]
  - calculator: FlowPackagerCalculator
    input_stream: ["FLOW:flow", "CAMERA:camera"]
    output_stream: ["TRACKING:tracking"]
    options: { binary_tracking_data_support: true }
"#,
        );
        let (rc, rf, rt, rv) = (
            record(&mut g, "camera"),
            record(&mut g, "flow"),
            record(&mut g, "tracking"),
            record(&mut g, "viz"),
        );
        g.start_run(Default::default()).unwrap();
        for k in 0..5 {
            g.add_packet("video", at(frame(2.0 * k as f32, -(k as f32)), 1000 * k))
                .unwrap();
        }
        g.finish().unwrap();
        let cams = rc.values::<CameraMotion>();
        let flows = rf.values::<RegionFlowFeatureList>();
        let tracking = rt.values::<TrackingData>();
        assert_eq!(cams.len(), 5);
        assert_eq!(flows.len(), 5);
        assert_eq!(tracking.len(), 5);
        assert_eq!(rv.packets().len(), 5);
        assert_eq!(cams[3].0, ts(3000));
        assert_eq!(cams[3].1.timestamp_usec, 3000);
        for (_, cam) in &cams[1..] {
            // Content moves by (+2, -1) analysis px = (4, -2) nominal; the flow points back.
            assert!((cam.translation.dx + 4.0).abs() < 0.1, "{cam:?}");
            assert!((cam.translation.dy - 2.0).abs() < 0.1, "{cam:?}");
            assert!(cam.motion_type <= CameraMotionType::UnstableSim);
        }
        let (_, td) = &tracking[4];
        td.validate().unwrap();
        assert_eq!(
            td.motion_data.num_elements as usize,
            flows[4].1.features.len()
        );
        // Residual motion of the background is about zero.
        let v = &td.motion_data.vector_data;
        let small = v.chunks(2).filter(|c| c[0].hypot(c[1]) < 0.1).count();
        assert!(small * 10 >= v.len() / 2 * 9, "{small} of {}", v.len() / 2);
    }

    #[test]
    fn options_are_checked() {
        let bad = r#"
input_stream: [video]
node:
  - calculator: MotionAnalysisCalculator
    input_stream: ["VIDEO:video"]
    output_stream: ["CAMERA:camera"]
    options: { analysis_options: { no_such_option: 1 } }
"#;
        assert!(mediagraph_framework::Graph::from_yaml_str(bad).is_err());
        let bad_domain = r#"
input_stream: [flow]
node:
  - calculator: FlowPackagerCalculator
    input_stream: ["FLOW:flow"]
    output_stream: ["TRACKING:t"]
    options: { domain_width: 1000 }
"#;
        assert!(mediagraph_framework::Graph::from_yaml_str(bad_domain).is_err());
    }
}
