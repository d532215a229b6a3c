FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md alembic.ini ./
COPY dfa ./dfa
COPY migrations ./migrations
COPY contracts ./contracts
RUN pip install --no-cache-dir -e . && useradd --system --uid 10001 dfa
USER dfa
EXPOSE 8000
CMD ["dfa", "serve", "--host", "0.0.0.0", "--port", "8000"]
