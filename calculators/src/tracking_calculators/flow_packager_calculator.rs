//! `FlowPackagerCalculator`: region flow and camera motion -> [`TrackingData`].
//!
//! Ports:
//! * input `FLOW` ([`RegionFlowFeatureList`]);
//! * optional input `CAMERA` ([`CameraMotion`]); without it (or when a frame's camera
//!   motion is missing or of type UNSTABLE or worse) the background counts as unstable;
//! * output `TRACKING` ([`TrackingData`]) at the flow's timestamp.
//!
//! Options: `domain_width` / `domain_height` (256 x 192) and
//! `binary_tracking_data_support`: when true, every packet is also checked to survive the
//! binary encoding (a frame the 16-bit format cannot hold is an error then).

use mediagraph_framework::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tracking::tracking_data::encode;
use crate::tracking::{
    CameraMotion, FlowPackager, FlowPackagerOptions, RegionFlowFeatureList, TrackingData,
};

/// Options of [`FlowPackagerCalculator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowPackagerCalculatorOptions {
    /// Domain width (at most 256).
    pub domain_width: i32,
    /// Domain height (at most 255).
    pub domain_height: i32,
    /// Check that every packet encodes.
    pub binary_tracking_data_support: bool,
}

impl Default for FlowPackagerCalculatorOptions {
    fn default() -> Self {
        let d = FlowPackagerOptions::default();
        FlowPackagerCalculatorOptions {
            domain_width: d.domain_width,
            domain_height: d.domain_height,
            binary_tracking_data_support: false,
        }
    }
}

/// See the module docs.
pub struct FlowPackagerCalculator {
    packager: FlowPackager,
    check_binary: bool,
}

const FLOW: Input<RegionFlowFeatureList> = Input::new("FLOW");
const CAMERA: Input<CameraMotion> = Input::new("CAMERA").optional();
const TRACKING: Output<TrackingData> = Output::new("TRACKING");

impl Calculator for FlowPackagerCalculator {
    type Options = FlowPackagerCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        if !(1..=256).contains(&options.domain_width) || !(1..=255).contains(&options.domain_height)
        {
            return Err(cc.error(crate::Error::Config {
                calculator: "FlowPackagerCalculator",
                message: format!(
                    "the domain must be within 256x255, got {}x{}",
                    options.domain_width, options.domain_height
                ),
            }));
        }
        cc.declare(&[&FLOW, &CAMERA, &TRACKING])?;
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(FlowPackagerCalculator {
            packager: FlowPackager::new(FlowPackagerOptions {
                domain_width: options.domain_width,
                domain_height: options.domain_height,
            }),
            check_binary: options.binary_tracking_data_support,
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(flow) = cx.input(&FLOW).get()? else {
            return Ok(Flow::Continue);
        };
        let camera = if cx.has_input(&CAMERA) {
            cx.input(&CAMERA).get()?
        } else {
            None
        };
        let data = self.packager.pack(flow, camera);
        if self.check_binary {
            encode(&data, true)?;
        }
        let ts = cx.input_timestamp();
        cx.output(&TRACKING).send(data, ts)?;
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(FlowPackagerCalculator, "FlowPackagerCalculator");
