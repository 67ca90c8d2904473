FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY paminga ./paminga
COPY custom_events ./custom_events
COPY tracking ./tracking
COPY automations ./automations
RUN pip install .
COPY . .
RUN DATABASE_URL=sqlite:////tmp/build.sqlite3 SECRET_KEY=build python manage.py collectstatic --noinput \
    && useradd --system --uid 1000 paminga && chown -R paminga /app
USER paminga

EXPOSE 8000
CMD ["gunicorn", "paminga.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4", "--worker-class", "gthread", "--threads", "4", "--access-logfile", "-"]
