"""Generated test libraries with an answer key: song synthesis and the library builder."""
