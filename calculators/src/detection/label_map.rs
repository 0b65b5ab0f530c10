//! Class names for detections (MediaPipe's `DetectionLabelIdToTextCalculator`): the plain
//! [`LabelMap`] and the calculator.

use std::path::Path;

use mediagraph_framework::prelude::*;
use serde::Deserialize;

use super::resources::resolve_model_file;
use super::{Detection, DetectionError};

/// Class names by class id (line `i` of a label map file names class `i`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelMap {
    labels: Vec<String>,
}

impl LabelMap {
    /// A map from names given in class-id order.
    pub fn new(labels: Vec<String>) -> LabelMap {
        LabelMap { labels }
    }

    /// Parses a label map text: one name per line, line `i` for class `i`; `\r\n` line ends
    /// are accepted, trailing empty lines ignored, names trimmed.
    pub fn parse(text: &str) -> LabelMap {
        let mut labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
        while labels.last().is_some_and(String::is_empty) {
            labels.pop();
        }
        LabelMap { labels }
    }

    /// Reads a label map file (a relative path is also looked up in the models directory, see
    /// [`super::resources`]).
    pub fn load(path: &str) -> crate::Result<LabelMap> {
        let resolved = resolve_model_file(path, "label map")?;
        let text = std::fs::read_to_string(&resolved).map_err(|e| DetectionError::Model {
            path: resolved.display().to_string(),
            message: format!("cannot read the label map: {e}"),
        })?;
        let map = LabelMap::parse(&text);
        if map.is_empty() {
            return Err(DetectionError::Model {
                path: Path::new(&resolved).display().to_string(),
                message: "the label map is empty".into(),
            }
            .into());
        }
        Ok(map)
    }

    /// The name of class `id`, if the map has one.
    pub fn get(&self, id: i32) -> Option<&str> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.labels.get(i))
            .map(String::as_str)
    }

    /// The id of the class named `name`, if any.
    pub fn id_of(&self, name: &str) -> Option<i32> {
        self.labels
            .iter()
            .position(|l| l == name)
            .and_then(|i| i32::try_from(i).ok())
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no classes.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Fills `detection.labels` from its label ids (an id without a name gets the id in
    /// decimal, so labels and ids stay parallel); clears the ids unless `keep_label_ids`.
    pub fn apply(&self, detection: &mut Detection, keep_label_ids: bool) {
        detection.labels = detection
            .label_ids
            .iter()
            .map(|&id| self.get(id).map_or_else(|| id.to_string(), str::to_string))
            .collect();
        if !keep_label_ids {
            detection.label_ids.clear();
        }
    }
}

/// Options of [`DetectionLabelIdToTextCalculator`] (MediaPipe's
/// `DetectionLabelIdToTextCalculatorOptions`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionLabelIdToTextCalculatorOptions {
    /// Label map file, one name per line (see [`LabelMap::load`]).
    pub label_map_path: String,
    /// Names in class-id order, instead of a file.
    pub label: Vec<String>,
    /// Keep `label_ids` next to the names (default true; MediaPipe's default clears them).
    pub keep_label_id: bool,
}

impl Default for DetectionLabelIdToTextCalculatorOptions {
    fn default() -> Self {
        DetectionLabelIdToTextCalculatorOptions {
            label_map_path: String::new(),
            label: Vec::new(),
            keep_label_id: true,
        }
    }
}

/// Fills in class names from class ids (MediaPipe's `DetectionLabelIdToTextCalculator`).
///
/// * Input streams: one untagged or `DETECTIONS` stream (`Vec<`[`Detection`]`>`).
/// * Output streams: one untagged or `DETECTIONS` stream (the same detections with `labels`).
/// * Options ([`DetectionLabelIdToTextCalculatorOptions`]): `label_map_path` or `label`,
///   `keep_label_id`.
///
/// The label map is read when the graph is loaded, so a missing file is a config error.
///
/// ```yaml
/// - calculator: DetectionLabelIdToTextCalculator
///   input_stream: ["DETECTIONS:detections"]
///   output_stream: ["DETECTIONS:labelled"]
///   options: {label_map_path: object_detection_oidv4_labelmap.txt}
/// ```
pub struct DetectionLabelIdToTextCalculator {
    map: LabelMap,
    keep_label_id: bool,
}

const IN_TAGGED: Input<Vec<Detection>> = Input::new("DETECTIONS").optional();
const IN_UNTAGGED: Input<Vec<Detection>> = Input::new("").optional();
const OUT_TAGGED: Output<Vec<Detection>> = Output::new("DETECTIONS").optional();
const OUT_UNTAGGED: Output<Vec<Detection>> = Output::new("").optional();

fn label_map_of(options: &DetectionLabelIdToTextCalculatorOptions) -> Result<LabelMap> {
    match (options.label_map_path.is_empty(), options.label.is_empty()) {
        (false, true) => LabelMap::load(&options.label_map_path),
        (true, false) => Ok(LabelMap::new(options.label.clone())),
        _ => Err(crate::Error::Config {
            calculator: "DetectionLabelIdToTextCalculator",
            message: "set exactly one of label_map_path and label".into(),
        }
        .into()),
    }
}

impl Calculator for DetectionLabelIdToTextCalculator {
    type Options = DetectionLabelIdToTextCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        cc.declare(&[&IN_TAGGED, &IN_UNTAGGED, &OUT_TAGGED, &OUT_UNTAGGED])?;
        let ins = cc.inputs().count(IN_TAGGED.tag()) + cc.inputs().count(IN_UNTAGGED.tag());
        let outs = cc.outputs().count(OUT_TAGGED.tag()) + cc.outputs().count(OUT_UNTAGGED.tag());
        if ins != 1 || outs != 1 {
            return Err(cc.error(crate::Error::Config {
                calculator: "DetectionLabelIdToTextCalculator",
                message: format!(
                    "needs exactly one input and one output detection stream (DETECTIONS or untagged), got {ins} and {outs}"
                ),
            }));
        }
        if let Err(e) = label_map_of(options) {
            return Err(cc.error(e));
        }
        cc.set_timestamp_offset(0);
        cc.set_independent_calls(true);
        Ok(())
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(DetectionLabelIdToTextCalculator {
            map: label_map_of(options)?,
            keep_label_id: options.keep_label_id,
        })
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let input = if cx.has_input(&IN_TAGGED) {
            cx.input(&IN_TAGGED).get()?
        } else {
            cx.input(&IN_UNTAGGED).get()?
        };
        let Some(detections) = input else {
            return Ok(Flow::Continue);
        };
        let mut out = detections.clone();
        for d in &mut out {
            self.map.apply(d, self.keep_label_id);
        }
        let ts = cx.input_timestamp();
        if cx.output(&OUT_TAGGED).is_connected() {
            cx.output(&OUT_TAGGED).send(out, ts)?;
        } else {
            cx.output(&OUT_UNTAGGED).send(out, ts)?;
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(
    DetectionLabelIdToTextCalculator,
    "DetectionLabelIdToTextCalculator"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::RelativeBox;
    use crate::test_util::{at, config_error, graph, record};

    #[test]
    fn parse_and_apply() {
        let map = LabelMap::parse("???\r\nBicycle\nBoot \n\n\n");
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(1), Some("Bicycle"));
        assert_eq!(map.get(2), Some("Boot"));
        assert_eq!(map.get(3), None);
        assert_eq!(map.get(-1), None);
        assert_eq!(map.id_of("Boot"), Some(2));
        let mut d = Detection::new(1, 0.5, RelativeBox::default());
        d.label_ids.push(7);
        map.apply(&mut d, true);
        assert_eq!(d.labels, vec!["Bicycle".to_string(), "7".to_string()]);
        assert_eq!(d.label_ids, vec![1, 7]);
        map.apply(&mut d, false);
        assert!(d.label_ids.is_empty());
    }

    #[test]
    fn label_map_file_in_a_graph_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        std::fs::write(&path, "background\nperson\ncar\n").unwrap();
        let yaml = format!(
            "input_stream: [d]\nnode:\n  - calculator: DetectionLabelIdToTextCalculator\n    input_stream: DETECTIONS:d\n    output_stream: DETECTIONS:out\n    options: {{label_map_path: '{}'}}\n",
            path.display()
        );
        let mut g = graph(&yaml);
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        let ds = vec![
            Detection::new(2, 0.9, RelativeBox::default()),
            Detection::new(1, 0.8, RelativeBox::default()),
        ];
        g.add_packet("d", at(ds, 5)).unwrap();
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        let v = out.values::<Vec<Detection>>();
        assert_eq!(v.len(), 1);
        let labels: Vec<&str> = v[0].1.iter().filter_map(Detection::label).collect();
        assert_eq!(labels, vec!["car", "person"]);

        let text = config_error(
            "input_stream: [d]\nnode:\n  - calculator: DetectionLabelIdToTextCalculator\n    input_stream: d\n    output_stream: out\n    options: {label_map_path: /no/such/labels.txt}\n",
        );
        assert!(text.contains("label map not found"), "{text}");
        let text = config_error(
            "input_stream: [d]\nnode:\n  - calculator: DetectionLabelIdToTextCalculator\n    input_stream: d\n    output_stream: out\n",
        );
        assert!(
            text.contains("exactly one of label_map_path and label"),
            "{text}"
        );
    }
}
