"""RabbitMQ: the queues' topology and the messages that travel on them."""
