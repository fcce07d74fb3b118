//! The opt-in status page (HTML and JSON): RED per route and recent slow or failed traces.
