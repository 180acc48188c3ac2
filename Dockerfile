FROM python:3.11-slim

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e .

# Workers and beat run as an unprivileged user.
RUN useradd --create-home trestle && chown -R trestle /app
USER trestle
ENTRYPOINT ["trestle-etl"]
CMD ["--help"]
