"""Beam building blocks and the pure functions behind them: DoFns, PTransforms and decode-pass
consumers, grouped by concern (decoding, shots, scenes, motion, keyframes, summaries, writing); the
stages in `reelbeam.stages` put them together."""
