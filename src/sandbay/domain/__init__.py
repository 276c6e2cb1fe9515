"""Pure domain: states and transitions, ids, errors and the shapes every layer shares."""
