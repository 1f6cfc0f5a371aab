//! C ABI of PicoLM (being written).
