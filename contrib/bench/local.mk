# benchmark suite and its FUSE passthrough instrument
