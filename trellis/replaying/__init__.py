"""Running past code again: hindsight replay (planning, executing segments, the segment's own
side in the child process), reproduction, and the worktrees of past code versions."""
