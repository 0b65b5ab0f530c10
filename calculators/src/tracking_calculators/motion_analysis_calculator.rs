//! `MotionAnalysisCalculator`: per-frame feature tracking and camera motion.
//!
//! Ports:
//! * input `VIDEO` ([`ImageFrame`], SRGB, SRGBA or GRAY8): analysed at its own size (the
//!   box-tracking graph resizes to 320x240 first);
//! * output `CAMERA` ([`CameraMotion`]) and `FLOW` ([`RegionFlowFeatureList`]), both at the
//!   frame's timestamp, in the nominal domain (input size x `downsample_factor`);
//! * optional output `VIZ` ([`ImageFrame`], SRGB): the frame with the feature tracks drawn
//!   (green: background, red: moving on its own).
//!
//! Options: `analysis_options` ([`MotionAnalysisOptions`], defaults = the reference's
//! CAMERA_MOBILE policy with the box-tracking graph's overrides) and `viz_track_length`.

use mediagraph_framework::prelude::*;
use serde::{Deserialize, Serialize};

use crate::image::{ImageFormat, ImageFrame};
use crate::tracking::visualize::TrackHistory;
use crate::tracking::{
    CameraMotion, GrayImage, MotionAnalysis, MotionAnalysisOptions, RegionFlowFeatureList,
};

/// Options of [`MotionAnalysisCalculator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionAnalysisCalculatorOptions {
    /// The analysis pipeline's options.
    pub analysis_options: MotionAnalysisOptions,
    /// Positions per track drawn on `VIZ`.
    pub viz_track_length: u32,
}

impl Default for MotionAnalysisCalculatorOptions {
    fn default() -> Self {
        MotionAnalysisCalculatorOptions {
            analysis_options: MotionAnalysisOptions::default(),
            viz_track_length: 10,
        }
    }
}

/// See the module docs.
pub struct MotionAnalysisCalculator {
    analysis: MotionAnalysis,
    history: TrackHistory,
}

const VIDEO: Input<ImageFrame> = Input::new("VIDEO");
const CAMERA: Output<CameraMotion> = Output::new("CAMERA").optional();
const FLOW: Output<RegionFlowFeatureList> = Output::new("FLOW").optional();
const VIZ: Output<ImageFrame> = Output::new("VIZ").optional();

impl Calculator for MotionAnalysisCalculator {
    type Options = MotionAnalysisCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        let ds = options.analysis_options.downsample_factor;
        if !(ds.is_finite() && ds > 0.0) {
            return Err(cc.error(crate::Error::Config {
                calculator: "MotionAnalysisCalculator",
                message: format!("analysis_options.downsample_factor must be positive, got {ds}"),
            }));
        }
        cc.declare(&[&VIDEO, &CAMERA, &FLOW, &VIZ])?;
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(MotionAnalysisCalculator {
            analysis: MotionAnalysis::new(options.analysis_options.clone()),
            history: TrackHistory::new(options.viz_track_length.max(1) as usize),
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(frame) = cx.input(&VIDEO).get()? else {
            return Ok(Flow::Continue);
        };
        let gray = GrayImage::from_interleaved(
            frame.width() as usize,
            frame.height() as usize,
            frame.channels(),
            false,
            frame.pixels(),
        )?;
        let ts = cx.input_timestamp();
        let (camera, flow) = self.analysis.process(&gray, ts.micros())?;
        if cx.output(&VIZ).is_connected() {
            let scale = self.analysis.options().downsample_factor;
            self.history.update(&flow, scale);
            let mut viz = frame.convert(ImageFormat::Srgb)?;
            let (w, h) = (viz.width() as usize, viz.height() as usize);
            self.history.draw(&flow, viz.pixels_mut(), w, h, 3);
            cx.output(&VIZ).send(viz, ts)?;
        }
        if cx.output(&CAMERA).is_connected() {
            cx.output(&CAMERA).send(camera, ts)?;
        }
        if cx.output(&FLOW).is_connected() {
            cx.output(&FLOW).send(flow, ts)?;
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(MotionAnalysisCalculator, "MotionAnalysisCalculator");
