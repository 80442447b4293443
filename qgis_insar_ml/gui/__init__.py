"""The desktop dialogs: thin front ends over the Processing algorithms and the core training loops."""
