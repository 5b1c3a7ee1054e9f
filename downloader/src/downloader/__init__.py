"""The DY Images downloader: fetches the URLs in URLS_FILE safely, stores each image once
(content-addressed), and publishes one RabbitMQ message per newly stored image."""
