//! Graph configs: the YAML model, located errors, subgraph expansion and validation.
