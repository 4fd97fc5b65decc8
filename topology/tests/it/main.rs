//! tern-topology's integration tests (one binary): the corpus of bad files, the examples, and
//! the committed JSON Schema.

mod corpus;
mod examples;
mod export;
mod json_schema;
