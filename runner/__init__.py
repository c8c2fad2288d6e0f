"""visionyard's host side. Arrows point one way: cli -> client -> (spec.wire, auth, settings);
daemon -> core -> launch; nothing imports payload (run by path). See ARCHITECTURE.md."""
