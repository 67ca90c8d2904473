"""Gunicorn settings read from the working directory by every gunicorn started here (the Dockerfile, compose).

The access log leaves out the client's IP address, referrer and user agent, which gunicorn's default format
writes: Paminga stores no raw IP address anywhere, its logs included (docs/privacy.md). What stays is enough to
operate: when, which request, the status, the size and the time taken.
"""

access_log_format = '%(t)s "%(r)s" %(s)s %(b)s %(M)sms'
