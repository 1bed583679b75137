"""What people look at: the web console's static files and the event streams (server-sent events) it is fed by."""
