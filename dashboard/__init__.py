"""devserve's control panels (Textual TUI, web page); they talk to the server only through the
control API in devserver.control."""
