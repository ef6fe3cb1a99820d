//! nice-plug's CLAP state frame: 8 bytes of little-endian length, then a JSON document
//! (`{"version", "params", "fields"}`, persisted fields stored as JSON strings). Tests read and
//! edit saved states through these.

/// The JSON document inside a saved state; `None` if `state` is not one.
pub fn state_document(state: &[u8]) -> Option<serde_json::Value> {
    let len = u64::from_le_bytes(state.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(len).ok()?)?;
    serde_json::from_slice(state.get(8..end)?).ok()
}

/// A state holding `document`, framed as nice-plug saves it.
pub fn state_bytes(document: &serde_json::Value) -> Vec<u8> {
    state_frame(&serde_json::to_vec(document).expect("a JSON value serialises"))
}

/// `state` (as the plugin saved it) with the chosen model's path set to `path`: the model the
/// editor's chooser would have picked. Panics if `state` is not a saved state.
pub fn with_model_path(state: &[u8], path: &str) -> Vec<u8> {
    let mut document = state_document(state).expect("a saved state");
    document["fields"]["model-path"] =
        serde_json::Value::String(serde_json::to_string(&Some(path)).expect("a path serialises"));
    state_bytes(&document)
}

/// A state holding the JSON document `json` byte for byte (a saved fixture), framed as nice-plug
/// saves it.
pub fn state_frame(json: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json);
    out
}
